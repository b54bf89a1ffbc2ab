"""Requests run by a real worker (in this event loop) through the API's relay and results
consumer: a provider job's usage reaches ``GET /svc/request/{id}``, and a poison task ends in the
dead letters, failed and refunded once."""

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any, cast

import asyncpg
import pytest
from redis.asyncio import Redis

from libs.accounts import NewUser
from libs.catalog import CatalogSpec, apply_catalog
from libs.contracts import TASKS_GROUP, TASKS_STREAM
from libs.streams import ensure_group
from services.worker._dead_letters import quarantine_start
from services.worker.handlers import build_registry
from services.worker.providers import ProviderHttp
from tests.fakes.provider import FakeProvider, Reply, fake_provider
from tests.integration.api.conftest import Api, auth
from tests.integration.worker.helpers import FAST, dead_letters, pending, running


@pytest.fixture
async def fake() -> AsyncIterator[FakeProvider]:
    async with fake_provider() as provider:
        yield provider


async def _finished(api: Api, user: NewUser, request_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while True:
        r = await api.client.get(f"/svc/request/{request_id}", headers=auth(user))
        body: dict[str, Any] = r.json()
        if body["status"] in ("succeeded", "failed"):
            return body
        assert time.monotonic() < deadline, body
        await asyncio.sleep(0.05)


async def _ledger(pool: "asyncpg.Pool[Any]", request_id: str) -> list[str]:
    rows = await pool.fetch(
        "SELECT kind FROM credit_ledger WHERE request_id = $1 ORDER BY id", request_id
    )
    return [r["kind"] for r in rows]


async def test_provider_usage_is_shown_with_the_request(
    api: Api, alice: NewUser, fake: FakeProvider, db_pool: "asyncpg.Pool[Any]", redis_client: Redis
) -> None:
    spec = CatalogSpec.model_validate(
        {
            "handlers": [
                {
                    "id": "openai.chat",
                    "params": {"base_url": f"{fake.url}/v1", "model": "m", "backoff_s": 0.01},
                }
            ],
            "offers": [
                {
                    "service": "llm",
                    "action": "chat",
                    "price": 5,
                    "prompt_template": "{text}",
                    "handler": "openai.chat",
                    "create_qty": 2,
                }
            ],
        }
    )
    async with db_pool.acquire() as conn:
        await apply_catalog(conn, spec, ssrf_allow=["127.0.0.1"])
    fake.script(Reply.error(502))
    http = ProviderHttp()
    try:
        async with running(redis_client, registry=build_registry(http=http)):
            r = await api.client.post(
                "/svc/llm/chat", json={"text": "hello world"}, headers=auth(alice)
            )
            assert r.status_code == 202
            body = await _finished(api, alice, r.json()["id"])
    finally:
        await http.aclose()

    assert body["status"] == "succeeded", body
    assert body["results"] == ["echo: hello world #0", "echo: hello world #1"]
    assert body["usage"] == {"input_tokens": 2, "output_tokens": 6}
    assert len(fake.calls) == 2
    assert await _ledger(db_pool, body["id"]) == ["reserve", "settle"]


async def test_a_poison_task_is_dead_lettered_failed_and_refunded_once(
    api: Api, alice: NewUser, db_pool: "asyncpg.Pool[Any]", redis_client: Redis
) -> None:
    await ensure_group(redis_client, TASKS_STREAM, TASKS_GROUP)
    r = await api.client.post("/svc/demo/echo", json={"text": "poison"}, headers=auth(alice))
    request_id = r.json()["id"]
    # Two workers take the task in turn and die before finishing it (they never ack).
    deadline = time.monotonic() + 10
    while not await redis_client.xreadgroup(TASKS_GROUP, "crashed-1", {TASKS_STREAM: ">"}):
        assert time.monotonic() < deadline, "the relay never published the task"
        await asyncio.sleep(0.05)
    (entry,) = await redis_client.xpending_range(TASKS_STREAM, TASKS_GROUP, "-", "+", 10)
    await redis_client.xclaim(TASKS_STREAM, TASKS_GROUP, "crashed-2", 0, [entry["message_id"]])
    # The second one was running it in quarantine (one crash counted).
    await quarantine_start(redis_client, cast(bytes, entry["message_id"]))
    settings = FAST.model_copy(update={"worker_max_crashes": 1, "worker_visibility_timeout_s": 0.3})

    async with running(redis_client, settings, consumer="survivor"):
        body = await _finished(api, alice, request_id)

    assert body["status"] == "failed"
    assert "delivered 2 times and never finished" in body["error"]
    assert "dead letters" in body["error"]
    assert body["results"] is None
    me = (await api.client.get("/me", headers=auth(alice))).json()
    assert (me["balance"], me["reserved"]) == (100, 0)
    assert await _ledger(db_pool, request_id) == ["reserve", "refund"]
    (dead,) = await dead_letters(redis_client)
    fields = dead[1]
    assert fields[b"entry_id"] == entry["message_id"]
    assert (fields[b"deliveries"], fields[b"crashes"]) == (b"2", b"1")
    assert request_id.encode() in fields[b"m"]
    assert await pending(redis_client) == 0
    assert await redis_client.xlen(TASKS_STREAM) == 0
