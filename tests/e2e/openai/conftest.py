"""What the tests of the OpenAI-compatible door share: the real processes of ``tests/e2e`` with
the fake provider reachable, a catalog of chat and embedding models, and an SDK client."""

import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import openai
import pytest

from libs.catalog import CatalogSpec, apply_catalog
from tests.e2e.conftest import Stack
from tests.e2e.providers import PROVIDER_ENV, integration
from tests.fakes.provider import FakeProvider
from tests.support import ServerUrls

WORDS = "one two three four five six seven eight"

EXTRA = CatalogSpec.model_validate(
    {
        "handlers": [
            {"id": "echo.text"},
            {"id": "echo.stream"},
            {"id": "echo.delay"},
            {"id": "openai.chat", "params": {"integration": "fake", "model": "gpt-fake"}},
            {"id": "openai.embeddings", "params": {"integration": "fake", "model": "emb-fake"}},
        ],
        "offers": [
            {
                "service": "chat",
                "action": "words",
                "price": 1,
                "prompt_template": "{text}",
                "handler": "echo.stream",
                "params": {"delay_ms": 20},
            },
            {
                "service": "chat",
                "action": "slow",
                "price": 3,
                "prompt_template": "{text}",
                "handler": "echo.delay",
                "params": {"delay_ms": 60_000},
            },
            {
                "service": "chat",
                "action": "gpt",
                "price": 2,
                "prompt_template": "{text}",
                "handler": "openai.chat",
                "aliases": ["gpt-4o-mini"],
            },
            {
                "service": "chat",
                "action": "priced",
                "price": 1,
                "input_price": 100,
                "output_price": 200,
                "max_output_tokens": 100,
                "prompt_template": "{text}",
                "handler": "echo.text",
            },
            {
                "service": "embed",
                "action": "small",
                "price": 1,
                "prompt_template": "{input}",
                "handler": "openai.embeddings",
                "aliases": ["text-embedding-3-small"],
            },
        ],
    }
)


@pytest.fixture
def stack_env(stack_env: dict[str, str]) -> dict[str, str]:
    return {**stack_env, **PROVIDER_ENV}


@pytest.fixture
async def catalog(
    fake: FakeProvider, servers: ServerUrls, db_pool: "asyncpg.Pool[Any]", stack: Stack
) -> AsyncIterator[None]:
    """The demo catalog (the stack's) with the offers above, and the operator's integration
    ``fake`` (the fake provider) that the workers follow."""
    async with integration(db_pool, servers, name="fake", url=fake.url):
        async with db_pool.acquire() as conn:
            await apply_catalog(conn, EXTRA, prune=False, ssrf_allow=["127.0.0.1"])
        yield


@pytest.fixture
async def sdk(stack: Stack, catalog: None) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(
        base_url=f"{stack.url}/v1", api_key=stack.user.api_key, timeout=60
    ) as client:
        yield client


async def ledger_of(pool: "asyncpg.Pool[Any]", request_id: uuid.UUID) -> dict[str, int]:
    rows = await pool.fetch(
        "SELECT kind, sum(amount) AS amount FROM credit_ledger WHERE request_id = $1 GROUP BY kind",
        request_id,
    )
    return {r["kind"]: int(r["amount"]) for r in rows}


def request_id_of(openai_id: str) -> uuid.UUID:
    return uuid.UUID(openai_id.rpartition("-")[2].removeprefix("resp_"))
