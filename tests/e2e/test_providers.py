"""The real worker processes calling a provider (the fake one, a real local HTTP server): the URL
and key come from the operator's integration that the catalog names, partial output streams,
usage is stored."""

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
from cryptography.fernet import Fernet, MultiFernet

from libs import config
from libs.catalog import CatalogSpec, apply_catalog
from libs.config.postgres import PostgresConfigStore
from tests.e2e.conftest import Stack
from tests.fakes.provider import FakeProvider, Reply, fake_provider
from tests.integration.config.conftest import clear_config_tables
from tests.support import ServerUrls

pytestmark = pytest.mark.e2e

KEY = "sk-e2e-secret"


@pytest.fixture
async def fake() -> AsyncIterator[FakeProvider]:
    async with fake_provider() as provider:
        yield provider


@pytest.fixture
def stack_env(stack_env: dict[str, str]) -> dict[str, str]:
    # The fake provider is on this host: the SSRF guard must let the workers reach it.
    return {**stack_env, "RELAI_E2E_PROVIDER_KEY": KEY, "RELAI_SSRF_ALLOW": '["127.0.0.1"]'}


@pytest.fixture
async def integration(
    fake: FakeProvider, servers: ServerUrls, db_pool: "asyncpg.Pool[Any]"
) -> AsyncIterator[None]:
    """The operator's integration ``claude`` in the active config ``worker`` (which the workers
    follow), its key read from the workers' environment; removed after the test."""
    await clear_config_tables(db_pool)
    store = PostgresConfigStore(db_pool, database_url=servers.database_url)
    text = (
        f"integrations:\n  claude:\n    base_url: {fake.url}\n"
        "    api_key: !ENV ${RELAI_E2E_PROVIDER_KEY}\n"
    )
    fernet = MultiFernet([Fernet(Fernet.generate_key())])
    environ = {"RELAI_E2E_PROVIDER_KEY": KEY}
    await config.upload(
        store, "worker", text, fernet=fernet, environ=environ, author="ops", activate=True
    )
    yield
    await clear_config_tables(db_pool)


async def test_a_streaming_provider_job_runs_in_a_worker_process_with_retries_and_usage(
    fake: FakeProvider,
    integration: None,
    stack: Stack,
    client: httpx.AsyncClient,
    db_pool: "asyncpg.Pool[Any]",
) -> None:
    spec = CatalogSpec.model_validate(
        {
            "handlers": [
                {
                    "id": "anthropic.messages",
                    "params": {"integration": "claude", "backoff_s": 0.05},
                }
            ],
            "offers": [
                {
                    "service": "llm",
                    "action": "claude",
                    "price": 9,
                    "prompt_template": "{text}",
                    "handler": "anthropic.messages",
                    "params": {"model": "claude-fake", "stream": True},
                }
            ],
        }
    )
    async with db_pool.acquire() as conn:
        await apply_catalog(conn, spec, ssrf_allow=["127.0.0.1"])
    fake.script(Reply.rate_limited(retry_after=0.2), Reply.error(529))

    r = await client.post("/svc/llm/claude", json={"text": "hello world"})
    assert r.status_code == 202, r.text
    deadline = time.monotonic() + 30
    while (body := (await client.get(f"/svc/request/{r.json()['id']}")).json())["status"] not in (
        "succeeded",
        "failed",
    ):
        assert time.monotonic() < deadline, body
        await asyncio.sleep(0.1)

    assert body["status"] == "succeeded", body
    assert body["results"] == ["echo: hello world"]
    assert body["usage"] == {"input_tokens": 2, "output_tokens": 3}
    assert len(fake.calls) == 3
    assert {c.headers["x-api-key"] for c in fake.calls} == {KEY}
    me = (await client.get("/me")).json()
    assert (me["balance"], me["reserved"]) == (stack.credits - 9, 0)
