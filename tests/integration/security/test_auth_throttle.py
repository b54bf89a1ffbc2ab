"""Failed authentication is throttled per client address: past the limit, an address gets 429
(HTTP) or 1013 (WebSocket) for every credential the API process has not verified lately, and
Postgres sees no key lookup for it. What Postgres sees is measured on the wire: every statement
the API's connections send goes through an asyncpg query logger, and the key lookups are the
statements that read ``api_keys``."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from libs.accounts import NewUser
from libs.db import pool as db_pool_module
from tests.integration.api.conftest import Api, auth, serving, settings_for
from tests.integration.security.conftest import (
    ISSUER,
    JwksServer,
    SigningKey,
    bearer,
    oidc_settings,
)
from tests.support import ServerUrls, create_user, load_demo_catalog

LIMIT = 20
"""``RELAI_AUTH_FAILURES_PER_MIN`` in these tests."""


class Statements:
    """The statements the API's Postgres connections sent, as they were sent."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    async def key_lookups(self) -> int:
        await asyncio.sleep(0.05)  # asyncpg calls query loggers on the next loop iteration
        return sum("api_keys" in query for query in self.sent)


@pytest.fixture
def statements(monkeypatch: pytest.MonkeyPatch) -> Statements:
    """Log every statement of the pools made from now on (the API's, made at its startup)."""
    seen = Statements()
    init = db_pool_module._init_connection

    async def logged(conn: asyncpg.Connection[Any]) -> None:
        await init(conn)
        conn.add_query_logger(lambda record: seen.sent.append(record.query))

    monkeypatch.setattr(db_pool_module, "_init_connection", logged)
    return seen


@asynccontextmanager
async def from_address(api: Api, host: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client whose connections come from ``host`` (any 127.x address is this machine)."""
    transport = httpx.AsyncHTTPTransport(local_address=host)
    async with httpx.AsyncClient(base_url=api.url, transport=transport, timeout=10) as client:
        yield client


def _bad_key() -> dict[str, str]:
    return {"Authorization": f"Bearer rk_{secrets.token_urlsafe(32)}"}


@pytest.fixture
async def throttled_api(
    servers: ServerUrls, db_pool: asyncpg.Pool[Any], statements: Statements
) -> AsyncIterator[Api]:
    """The API with the throttle at ``LIMIT``, its statements logged, and a key cache short
    enough to watch a known key looked up again."""
    await load_demo_catalog(db_pool)
    settings = settings_for(servers, auth_failures_per_min=LIMIT, auth_cache_ttl_s=0.2)
    async with serving(settings) as running:
        yield running


async def test_an_address_guessing_keys_is_stopped_before_postgres(
    throttled_api: Api, statements: Statements, db_pool: asyncpg.Pool[Any]
) -> None:
    alice = await create_user(db_pool, name="alice", credits=10)
    bob = await create_user(db_pool, name="bob", credits=10)
    async with from_address(throttled_api, "127.0.0.1") as client:
        assert (await client.get("/me", headers=auth(alice))).status_code == 200
        before = await statements.key_lookups()

        answers = [await client.get("/me", headers=_bad_key()) for _ in range(100)]
        assert [r.status_code for r in answers] == [401] * LIMIT + [429] * (100 - LIMIT)
        assert await statements.key_lookups() - before == LIMIT
        for refused in answers[LIMIT:]:
            body = refused.json()
            assert body["code"] == "too_many_requests"
            assert "failed authentications" in body["detail"]
            assert 1 <= body["retry_after"] <= 60
            assert refused.headers["retry-after"] == str(body["retry_after"])

        # A key this process verified keeps working, looked up again once its cache entry
        # is gone; a valid key it never saw waits like any guess, without a lookup.
        await asyncio.sleep(0.3)
        lookups = await statements.key_lookups()
        assert (await client.get("/me", headers=auth(alice))).json()["name"] == "alice"
        assert await statements.key_lookups() == lookups + 1
        unseen = await client.get("/me", headers=auth(bob))
        assert unseen.status_code == 429
        assert await statements.key_lookups() == lookups + 1

    async with from_address(throttled_api, "127.0.0.2") as elsewhere:
        assert (await elsewhere.get("/me", headers=auth(bob))).json()["name"] == "bob"


async def test_a_refused_key_is_not_looked_up_again(
    throttled_api: Api, statements: Statements
) -> None:
    bad = _bad_key()
    async with from_address(throttled_api, "127.0.0.3") as client:
        before = await statements.key_lookups()
        statuses = [(await client.get("/svc", headers=bad)).status_code for _ in range(5)]
        assert statuses == [401] * 5
        assert await statements.key_lookups() - before == 1


async def test_websocket_failures_count_and_are_refused_alike(
    throttled_api: Api, statements: Statements, alice: NewUser
) -> None:
    async with from_address(throttled_api, "127.0.0.1") as client:
        assert (await client.get("/me", headers=auth(alice))).status_code == 200
    url = f"{throttled_api.ws_url}/ws"

    async def close_code(headers: dict[str, str]) -> tuple[int, str]:
        async with connect(url, additional_headers=headers) as ws:
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), timeout=5)
        assert closed.value.rcvd is not None
        return closed.value.rcvd.code, closed.value.rcvd.reason

    before = await statements.key_lookups()
    for _ in range(LIMIT):
        assert (await close_code(_bad_key()))[0] == 4401
    code, reason = await close_code(_bad_key())
    assert code == 1013
    assert reason.startswith("too many failed authentications from this address; retry in")
    assert await statements.key_lookups() - before == LIMIT
    # The same count as over HTTP; and the known key opens a socket all the same.
    assert (await throttled_api.client.get("/me", headers=_bad_key())).status_code == 429
    async with connect(url, additional_headers=auth(alice)) as ws:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(ws.recv(), timeout=0.3)


async def test_refused_tokens_count_too_and_a_verified_token_keeps_working(
    servers: ServerUrls,
    db_pool: asyncpg.Pool[Any],
    alice: NewUser,
    signing_keys: tuple[SigningKey, SigningKey],
    jwks: JwksServer,
) -> None:
    await db_pool.execute(
        "INSERT INTO identities (issuer, subject, user_id) VALUES ($1, 'a', $2)", ISSUER, alice.id
    )
    throttled = oidc_settings(jwks, auth_failures_per_min=LIMIT, auth_cache_ttl_s=0.2)
    settings = settings_for(servers, **throttled)
    async with serving(settings) as api:
        token = signing_keys[0].token("a")
        assert (await api.client.get("/me", headers=bearer(token))).status_code == 200
        for n in range(LIMIT):
            other_audience = signing_keys[0].token("a", aud="elsewhere", jti=str(n))
            assert (await api.client.get("/me", headers=bearer(other_audience))).status_code == 401
        unseen = signing_keys[0].token("a", jti="new")
        assert (await api.client.get("/me", headers=bearer(unseen))).status_code == 429
        await asyncio.sleep(0.3)  # out of the cache, still known: verified again
        assert (await api.client.get("/me", headers=bearer(token))).json()["name"] == "alice"
