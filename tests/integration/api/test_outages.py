"""What a client sees when Postgres or Redis goes away under the API, and that nothing is lost
or charged twice."""

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy.engine import make_url

from libs.accounts import NewUser
from libs.contracts import TASKS_STREAM
from services.api.settings import ApiSettings
from tests.integration.api.conftest import auth, serving
from tests.proxy import TcpProxy, proxy_for, through
from tests.support import ServerUrls, create_user, load_demo_catalog


@pytest.fixture
async def proxies(servers: ServerUrls) -> AsyncIterator[tuple[TcpProxy, TcpProxy]]:
    pg, redis = proxy_for(servers.database_url, 5432), proxy_for(servers.redis_url, 6379)
    await pg.start()
    await redis.start()
    yield pg, redis
    await pg.cut()
    await redis.cut()


@pytest.fixture
async def client(
    servers: ServerUrls, db_pool: "asyncpg.Pool[Any]", proxies: tuple[TcpProxy, TcpProxy]
) -> AsyncIterator[httpx.AsyncClient]:
    await load_demo_catalog(db_pool)
    pg, redis = proxies
    redis_url = str(make_url(servers.redis_url).set(host="127.0.0.1", port=redis.port))
    settings = ApiSettings(
        database_url=through(servers.database_url, pg),
        redis_url=redis_url,
        relay_poll_s=0.2,
        auth_cache_ttl_s=60,
    )
    async with serving(settings) as api:
        yield api.client


@pytest.fixture
async def user(db_pool: "asyncpg.Pool[Any]") -> NewUser:
    return await create_user(db_pool, name="outage", credits=100)


async def test_postgres_gone_is_a_503_with_nothing_written_and_recovers(
    client: httpx.AsyncClient,
    proxies: tuple[TcpProxy, TcpProxy],
    user: NewUser,
    db_pool: "asyncpg.Pool[Any]",
) -> None:
    pg, _ = proxies
    ok = await client.post("/svc/demo/echo", json={"text": "before"}, headers=auth(user))
    assert ok.status_code == 202
    await pg.cut()
    down = await client.post("/svc/demo/echo", json={"text": "during"}, headers=auth(user))
    assert down.status_code == 503
    assert down.json()["code"] == "unavailable"
    assert down.headers["retry-after"] == "1"
    health = await client.get("/health")
    assert health.status_code == 503
    # The kind of failure only: its text would name the database's host, port and user.
    assert health.json()["postgres"].startswith("unreachable (")
    assert "127.0.0.1" not in health.text
    assert "postgres@" not in health.text
    assert await db_pool.fetchval("SELECT count(*) FROM requests") == 1
    await pg.restore()
    again = await client.post("/svc/demo/echo", json={"text": "during"}, headers=auth(user))
    assert again.status_code == 202
    row = await db_pool.fetchrow("SELECT balance, reserved FROM users WHERE id = $1", user.id)
    assert row is not None
    assert (row["balance"], row["reserved"]) == (96, 4)


async def test_api_started_while_postgres_is_down_answers_503_then_serves(
    servers: ServerUrls,
    db_pool: "asyncpg.Pool[Any]",
    proxies: tuple[TcpProxy, TcpProxy],
    user: NewUser,
) -> None:
    await load_demo_catalog(db_pool)
    pg, _ = proxies
    await pg.cut()
    settings = ApiSettings(
        database_url=through(servers.database_url, pg), redis_url=servers.redis_url
    )
    async with serving(settings) as api:
        down = await api.client.post("/svc/demo/echo", json={"text": "x"}, headers=auth(user))
        assert (down.status_code, down.json()["code"]) == (503, "unavailable")
        await pg.restore()
        up = await api.client.post("/svc/demo/echo", json={"text": "x"}, headers=auth(user))
        assert up.status_code == 202
    assert await db_pool.fetchval("SELECT count(*) FROM requests") == 1


async def test_redis_gone_still_accepts_and_publishes_once_it_is_back(
    client: httpx.AsyncClient,
    proxies: tuple[TcpProxy, TcpProxy],
    user: NewUser,
    db_pool: "asyncpg.Pool[Any]",
    redis_client: Redis,
) -> None:
    _, redis = proxies
    await redis.cut()
    r = await client.post("/svc/demo/echo", json={"text": "queued"}, headers=auth(user))
    assert r.status_code == 202
    health = await client.get("/health")
    assert health.status_code == 503
    assert health.json()["postgres"] == "ok"
    await asyncio.sleep(0.5)
    assert await db_pool.fetchval("SELECT count(*) FROM outbox") == 1
    await redis.restore()
    async with asyncio.timeout(10):
        while await db_pool.fetchval("SELECT count(*) FROM outbox"):
            await asyncio.sleep(0.05)
    entries: Any = await redis_client.xrange(TASKS_STREAM)
    assert [r.json()["id"] in fields[b"m"].decode() for _, fields in entries] == [True]
