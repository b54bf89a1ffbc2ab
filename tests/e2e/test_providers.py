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

from libs.catalog import CatalogSpec, apply_catalog
from tests.e2e.conftest import Stack
from tests.e2e.providers import KEY, PROVIDER_ENV, integration
from tests.fakes.provider import FakeProvider, Reply
from tests.support import ServerUrls

pytestmark = pytest.mark.e2e


@pytest.fixture
def stack_env(stack_env: dict[str, str]) -> dict[str, str]:
    return {**stack_env, **PROVIDER_ENV}


@pytest.fixture
async def claude(
    fake: FakeProvider, servers: ServerUrls, db_pool: "asyncpg.Pool[Any]"
) -> AsyncIterator[None]:
    """The operator's integration ``claude``: the fake provider."""
    async with integration(db_pool, servers, name="claude", url=fake.url):
        yield


async def test_a_streaming_provider_job_runs_in_a_worker_process_with_retries_and_usage(
    fake: FakeProvider,
    claude: None,
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
