"""Rate limits per credential, shared by API replicas through Redis (429 with Retry-After), and
the cap on a user's unfinished requests (429, nothing charged)."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from libs.accounts import NewUser
from tests.deals_support import load_deals_catalog
from tests.integration.api.conftest import auth, serving, settings_for
from tests.support import ServerUrls, load_demo_catalog


async def test_the_rate_limit_is_per_key_and_shared_by_replicas(
    servers: ServerUrls, db_pool: asyncpg.Pool[Any], alice: NewUser, bob: NewUser
) -> None:
    await load_demo_catalog(db_pool)
    settings = settings_for(servers, rate_limit_per_s=0.2, rate_limit_burst=4)
    async with serving(settings) as one, serving(settings) as two:
        codes = [
            (await replica.client.get("/me", headers=auth(alice))).status_code
            for replica in (one, two, one, two)
        ]
        assert codes == [200] * 4
        for replica in (one, two):
            refused = await replica.client.get("/me", headers=auth(alice))
            assert refused.status_code == 429
            assert refused.json()["code"] == "too_many_requests"
            assert 1 <= int(refused.headers["retry-after"]) <= 5
        submit = await one.client.post("/svc/demo/echo", json={"text": "x"}, headers=auth(alice))
        assert submit.status_code == 429
        assert (await two.client.get("/me", headers=auth(bob))).status_code == 200
    assert await db_pool.fetchval("SELECT count(*) FROM requests") == 0
    assert await db_pool.fetchval("SELECT balance FROM users WHERE name = 'alice'") == 100


async def test_the_allowance_comes_back_with_time(
    servers: ServerUrls, db_pool: asyncpg.Pool[Any], alice: NewUser
) -> None:
    settings = settings_for(servers, rate_limit_per_s=2, rate_limit_burst=1)
    async with serving(settings) as api:
        assert (await api.client.get("/me", headers=auth(alice))).status_code == 200
        refused = await api.client.get("/me", headers=auth(alice))
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == "1"
        await asyncio.sleep(0.6)
        assert (await api.client.get("/me", headers=auth(alice))).status_code == 200


async def test_the_unfinished_cap_refuses_new_requests_not_duplicates(
    servers: ServerUrls, db_pool: asyncpg.Pool[Any], alice: NewUser, bob: NewUser
) -> None:
    await load_demo_catalog(db_pool)
    async with serving(settings_for(servers, max_unfinished_per_user=2)) as api:
        for text in ("one", "two"):
            r = await api.client.post("/svc/demo/echo", json={"text": text}, headers=auth(alice))
            assert r.status_code == 202
        refused = await api.client.post("/svc/demo/echo", json={"text": "3"}, headers=auth(alice))
        assert refused.status_code == 429
        assert refused.json()["detail"] == (
            "you have 2 unfinished requests, the most allowed; submit more once some end"
        )
        assert refused.json()["limit"] == 2
        again = await api.client.post("/svc/demo/echo", json={"text": "one"}, headers=auth(alice))
        assert (again.status_code, again.json()["duplicate"]) == (202, True)
        assert (
            await api.client.post("/svc/demo/echo", json={"text": "3"}, headers=auth(bob))
        ).status_code == 202
    # Two requests of 2 credits reserved, the refused one charged nothing.
    row = await db_pool.fetchrow("SELECT balance, reserved FROM users WHERE name = 'alice'")
    assert row is not None
    assert (row["balance"], row["reserved"]) == (96, 4)
    assert await db_pool.fetchval("SELECT count(*) FROM requests WHERE user_id = $1", alice.id) == 2


async def test_a_concurrent_burst_cannot_pass_the_unfinished_cap(
    servers: ServerUrls, db_pool: asyncpg.Pool[Any], alice: NewUser
) -> None:
    """The attack: with a cap of 3, ten submissions at once all got 202. The cap is checked
    and the request written under the user's lock, so exactly three are accepted; offers and
    deals alike, and a resubmission of an accepted one is still its duplicate."""
    await load_deals_catalog(db_pool)
    async with serving(settings_for(servers, max_unfinished_per_user=3)) as api:
        answers = await asyncio.gather(
            *(
                api.client.post("/svc/demo/echo", json={"text": f"t{n}"}, headers=auth(alice))
                if n % 2
                else api.client.post(
                    "/deal/chain", json={"inputs": {"text": f"d{n}"}}, headers=auth(alice)
                )
                for n in range(10)
            )
        )
        codes = sorted(r.status_code for r in answers)
        assert codes == [202] * 3 + [429] * 7
        accepted = next(r for r in answers if r.status_code == 202)
        path = "/svc/demo/echo" if accepted.json().get("steps") is None else "/deal/chain"
        n = answers.index(accepted)
        body = {"text": f"t{n}"} if path == "/svc/demo/echo" else {"inputs": {"text": f"d{n}"}}
        again = await api.client.post(path, json=body, headers=auth(alice))
        assert (again.status_code, again.json()["duplicate"]) == (202, True)
    assert await db_pool.fetchval("SELECT count(*) FROM requests WHERE user_id = $1", alice.id) == 3
    reserves = await db_pool.fetchval(
        "SELECT count(*) FROM credit_ledger WHERE user_id = $1 AND kind = 'reserve'", alice.id
    )
    assert reserves == 3


async def test_websocket_connections_count_against_the_rate_limit(
    servers: ServerUrls, db_pool: asyncpg.Pool[Any], alice: NewUser
) -> None:
    settings = settings_for(servers, rate_limit_per_s=0.2, rate_limit_burst=2)
    async with serving(settings) as api:
        assert (await api.client.get("/me", headers=auth(alice))).status_code == 200
        async with connect(f"{api.ws_url}/ws", additional_headers=auth(alice)) as ws:
            await ws.ping()
        async with connect(f"{api.ws_url}/ws", additional_headers=auth(alice)) as ws:
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), timeout=5)
        assert closed.value.rcvd is not None
        assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (
            1013,
            "rate limit exceeded for this credential; retry later",
        )


async def test_a_concurrent_burst_gets_exactly_the_allowance(
    servers: ServerUrls, db_pool: asyncpg.Pool[Any], alice: NewUser
) -> None:
    settings = settings_for(servers, rate_limit_per_s=0.01, rate_limit_burst=10)
    async with serving(settings) as api:
        answers = await asyncio.gather(
            *(api.client.get("/me", headers=auth(alice)) for _ in range(150))
        )
    codes = sorted(r.status_code for r in answers)
    assert codes == [200] * 10 + [429] * 140


async def test_deals_count_against_the_unfinished_cap(
    servers: ServerUrls, db_pool: asyncpg.Pool[Any], alice: NewUser
) -> None:
    await load_deals_catalog(db_pool)
    async with serving(settings_for(servers, max_unfinished_per_user=1)) as api:
        first = await api.client.post(
            "/deal/chain", json={"inputs": {"text": "a"}}, headers=auth(alice)
        )
        assert first.status_code == 202, first.text
        refused = await api.client.post(
            "/deal/chain", json={"inputs": {"text": "b"}}, headers=auth(alice)
        )
        assert (refused.status_code, refused.json()["limit"]) == (429, 1)
        again = await api.client.post(
            "/deal/chain", json={"inputs": {"text": "a"}}, headers=auth(alice)
        )
        assert (again.status_code, again.json()["duplicate"]) == (202, True)
    assert await db_pool.fetchval("SELECT count(*) FROM requests WHERE user_id = $1", alice.id) == 1
