"""A fresh stack per scenario, a user with credits and a catalog of ``echo.delay`` offers.

``RELAI_CHAOS_N`` sets how many requests each scenario submits: a few dozen in the default test
run, 1,000 with ``make chaos``.
"""

import os
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from libs.accounts import NewUser
from libs.catalog import CatalogSpec, apply_catalog
from tests.chaos.harness import HEADER
from tests.chaos.stack import ChaosStack, RedisServer
from tests.support import ServerUrls, create_user

N = int(os.environ.get("RELAI_CHAOS_N", "40"))
CREDITS = 1_000_000
CATALOG = CatalogSpec.model_validate(
    {
        "handlers": [{"id": "echo.delay"}, {"id": "crash.now"}],
        "offers": [
            {
                "service": "chaos",
                "action": "work",
                "price": 3,
                "prompt_template": "{text}",
                "handler": "echo.delay",
                "params": {"delay_ms": 300},
            },
            {
                "service": "chaos",
                "action": "storm",
                "price": 3,
                "prompt_template": "{text}",
                "handler": "echo.delay",
                "params": {"delay_ms": 100, "failure_rate": 0.4},
            },
            {
                "service": "chaos",
                "action": "poison",
                "price": 3,
                "prompt_template": "{text}",
                "handler": "crash.now",
            },
        ],
    }
)

_printed_header = False


@pytest.fixture
def report(capsys: pytest.CaptureFixture[str]) -> Iterator[list[str]]:
    """Lines the scenario wants shown whatever the capture mode: the figures."""
    global _printed_header
    lines: list[str] = []
    yield lines
    with capsys.disabled():
        if not _printed_header:
            sys.stdout.write(f"\n{HEADER}\n")
            _printed_header = True
        for line in lines:
            sys.stdout.write(f"{line}\n")


@pytest.fixture
async def chaos_user(db_pool: "asyncpg.Pool[Any]") -> NewUser:
    async with db_pool.acquire() as conn:
        await apply_catalog(conn, CATALOG)
    return await create_user(db_pool, name="chaos", credits=CREDITS)


@pytest.fixture
async def chaos_stack(
    servers: ServerUrls, chaos_user: NewUser, tmp_path: Path
) -> AsyncIterator[ChaosStack]:
    stack = ChaosStack(
        workdir=tmp_path, database_url=servers.database_url, redis=RedisServer(workdir=tmp_path)
    )
    try:
        await stack.start()
        yield stack
    finally:
        await stack.stop()
