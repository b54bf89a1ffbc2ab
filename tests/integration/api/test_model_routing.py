"""A request of a model end to end: submitted over HTTP, routed by a worker across the model's
servers (fake providers of the OpenAI wire format), its end recorded by the API's results
consumer. The deployment that answered is kept; when every deployment fails, the request fails
after the model's ``max_attempts`` calls and is refunded."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest
from redis.asyncio import Redis

from libs.accounts import NewUser
from libs.catalog import CatalogSpec, apply_catalog
from libs.config import ConfigWatcher
from libs.outcomes.redrive import lock_request
from tests.fakes.provider import FakeProvider, Reply, fake_provider
from tests.integration.api.conftest import Api, auth
from tests.integration.api.money_helpers import ended, ledger_of, wallet_of
from tests.integration.worker.routing_support import configure, routing_worker
from tests.support import ServerUrls

CATALOG = CatalogSpec.model_validate(
    {
        "handlers": [{"id": "openai.chat"}],
        "models": [
            {
                "name": "llm",
                "version": "2",
                "handler": "openai.chat",
                "context_window": 1000,
                "max_output_tokens": 100,
                "deployments": [{"integration": "model_a"}, {"integration": "model_b"}],
                "max_attempts": 3,
                "cooldown_s": 0.2,
                "default": True,
            },
            {
                "name": "small",
                "version": "1",
                "handler": "openai.chat",
                "context_window": 1000,
                "max_output_tokens": 100,
                "deployments": [{"integration": "model_c"}],
                "default": True,
            },
        ],
        "offers": [
            {
                "service": "routed",
                "action": "chat",
                "price": 4,
                "prompt_template": "{text}",
                "handler": "openai.chat",
                "model": "llm",
            },
            {
                "service": "routed",
                "action": "cheaper",
                "price": 4,
                "prompt_template": "{text}",
                "handler": "openai.chat",
                "model": "llm",
                "fallbacks": [{"model": "small", "percent": 50}],
            },
        ],
    }
)


async def _submit(api: Api, user: NewUser, text: str, action: str = "chat") -> str:
    r = await api.client.post(f"/svc/routed/{action}", json={"text": text}, headers=auth(user))
    assert r.status_code == 202, r.text
    request_id: str = r.json()["id"]
    return request_id


@dataclass
class ModelServers:
    """The catalog applied, and a fake provider for each of its deployments (``model_a`` and
    ``model_b`` for ``llm``, ``model_c`` for ``small``) in the config the worker follows."""

    a: FakeProvider
    b: FakeProvider
    c: FakeProvider
    watcher: ConfigWatcher


@pytest.fixture
async def model_servers(
    servers: ServerUrls, db_pool: "asyncpg.Pool[Any]"
) -> AsyncIterator[ModelServers]:
    async with db_pool.acquire() as conn:
        await apply_catalog(conn, CATALOG, prune=False)
    async with fake_provider() as a, fake_provider() as b, fake_provider() as c:
        watcher = await configure(servers, db_pool, {"model_a": a, "model_b": b, "model_c": c})
        yield ModelServers(a, b, c, watcher)


async def test_the_deployment_that_answered_is_kept_and_every_one_down_is_refunded(
    api: Api,
    alice: NewUser,
    model_servers: ModelServers,
    db_pool: "asyncpg.Pool[Any]",
    redis_client: Redis,
) -> None:
    a, b, watcher = model_servers.a, model_servers.b, model_servers.watcher
    a.script(Reply.error(503))  # model_a fails first: the call goes to model_b
    async with routing_worker(redis_client, watcher):
        served = await ended(api, alice, await _submit(api, alice, "hello"))
        assert served["status"] == "succeeded", served
        assert served["model"] == "llm@2"
        deployment = await db_pool.fetchval(
            "SELECT deployment FROM requests WHERE id = $1::uuid", served["id"]
        )
        assert deployment == "model_b"
        assert await ledger_of(db_pool, served["id"]) == {"reserve": 4, "settle": 4}

        a.script(*[Reply.error(500)] * 5)
        b.script(*[Reply.error(502)] * 5)
        calls = len(a.calls) + len(b.calls)
        down = await ended(api, alice, await _submit(api, alice, "nobody answers"))
    assert down["status"] == "failed", down
    assert "model_a" in down["error"]
    assert "model_b" in down["error"]
    assert len(a.calls) + len(b.calls) - calls == 3  # the model's max_attempts
    assert await ledger_of(db_pool, down["id"]) == {"reserve": 4, "refund": 4}
    assert await wallet_of(db_pool, alice) == (100 - 4, 0)


async def test_a_fallback_model_serves_when_every_deployment_failed_and_costs_its_percent(
    api: Api,
    alice: NewUser,
    model_servers: ModelServers,
    db_pool: "asyncpg.Pool[Any]",
    redis_client: Redis,
) -> None:
    a, b, c = model_servers.a, model_servers.b, model_servers.c
    a.script(*[Reply.error(500)] * 5)
    b.script(*[Reply.error(503)] * 5)
    request_id = await _submit(api, alice, "both down", "cheaper")
    for _ in range(200):  # published by the relay: a re-drive could take it now
        if not await db_pool.fetchval("SELECT count(*) FROM outbox"):
            break
        await asyncio.sleep(0.05)
    async with db_pool.acquire() as conn, conn.transaction():
        locked = await lock_request(conn, uuid.UUID(request_id))
        assert locked is not None
        assert locked.run.route is not None
        # A re-drive would route it the same way: the model, then its fallback.
        assert [f.ref for f in locked.run.route.fallbacks] == ["small@1"]
    async with routing_worker(redis_client, model_servers.watcher):
        served = await ended(api, alice, request_id)
    assert served["status"] == "succeeded", served
    assert served["model"] == "small@1"
    assert (len(a.calls) + len(b.calls), len(c.calls)) == (3, 1)
    row = await db_pool.fetchrow(
        "SELECT deployment, model_percents FROM requests WHERE id = $1", uuid.UUID(request_id)
    )
    assert row is not None
    assert (row["deployment"], row["model_percents"]) == ("model_c", {"small@1": 50})
    # Half of its price, the rest released: never more than it reserved.
    assert await ledger_of(db_pool, request_id) == {"reserve": 4, "settle": 2, "release": 2}
    assert await wallet_of(db_pool, alice) == (100 - 2, 0)
