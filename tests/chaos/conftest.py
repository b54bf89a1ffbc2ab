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
import httpx
import pytest
from redis.asyncio import Redis

from libs.accounts import NewUser
from libs.catalog import CatalogSpec, apply_catalog
from libs.contracts.webhooks import REQUEST_EVENTS
from libs.streams import create_redis
from tests.chaos.harness import HEADER
from tests.chaos.stack import ChaosStack, RedisServer
from tests.integration.dispatcher.receiver import Receiver
from tests.scale_servers import SentinelSet
from tests.support import ServerUrls, create_user

N = int(os.environ.get("RELAI_CHAOS_N", "40"))
CREDITS = 1_000_000
CATALOG = CatalogSpec.model_validate(
    {
        "handlers": [{"id": "echo.delay"}, {"id": "crash.now"}, {"id": "openai.chat"}],
        "models": [
            {
                # Served by two fake model servers (``test_failover``): integrations of the
                # central config ``worker`` that only that scenario configures.
                "name": "chaos-llm",
                "version": "1",
                "handler": "openai.chat",
                "context_window": 4096,
                "max_output_tokens": 256,
                "deployments": [{"integration": "model_a"}, {"integration": "model_b"}],
                "cooldown_s": 5,
                "default": True,
            }
        ],
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
                "action": "model",
                "price": 3,
                "prompt_template": "{text}",
                "handler": "openai.chat",
                "model": "chaos-llm",
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


SCALED = {"redis_failover", "pgbouncer_restart"}
"""The scenarios on a deployment past one machine: Redis through a Sentinel set, Postgres
through PgBouncer in transaction pooling mode (and directly for sessions). With
``RELAI_CHAOS_SCALED=1`` every scenario runs there."""

ALL_SCALED = os.environ.get("RELAI_CHAOS_SCALED") == "1"


@pytest.fixture
async def chaos_stack(
    servers: ServerUrls, chaos_user: NewUser, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[ChaosStack]:
    callspec = getattr(request.node, "callspec", None)
    name = callspec.params.get("name") if callspec is not None else request.node.originalname
    scaled = ALL_SCALED or name in SCALED or request.node.originalname in SCALED
    stack = ChaosStack(
        workdir=tmp_path,
        database_url=servers.database_url,
        redis=SentinelSet(tmp_path / "sentinel") if scaled else RedisServer(workdir=tmp_path),
        pgbouncer=scaled,
    )
    try:
        await stack.start()
        yield stack
    finally:
        await stack.stop()


@pytest.fixture
async def stack_redis(chaos_stack: ChaosStack) -> AsyncIterator[Redis]:
    client = create_redis(chaos_stack.redis.url)
    yield client
    await client.aclose()


@pytest.fixture
async def receiver(chaos_stack: ChaosStack, chaos_user: NewUser) -> AsyncIterator[Receiver]:
    """A receiver on this host, registered as the chaos user's endpoint over the API."""
    hooks = Receiver()
    await hooks.start()
    headers = {"Authorization": f"Bearer {chaos_user.api_key}"}
    async with httpx.AsyncClient(base_url=chaos_stack.url, headers=headers, timeout=10) as client:
        response = await client.post(
            "/webhooks", json={"url": hooks.url, "events": list(REQUEST_EVENTS)}
        )
    assert response.status_code == 201, response.text
    hooks.secrets = [response.json()["secret"]]
    yield hooks
    await hooks.stop()
