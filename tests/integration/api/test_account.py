"""The caller's own ledger (``GET /me/ledger``) and hourly usage (``GET /me/usage``): theirs
only, paged, and without the operator's side (handlers, cost)."""

import uuid
from typing import Any

import asyncpg

from libs.accounts import NewUser
from libs.outcomes import Ended, record_outcomes
from services.recon.usage.service import UsageLoop
from tests.integration.api.conftest import Api, auth


async def _submit(api: Api, user: NewUser, text: str) -> uuid.UUID:
    r = await api.client.post("/svc/demo/echo", json={"text": text}, headers=auth(user))
    assert r.status_code == 202, r.text
    return uuid.UUID(r.json()["id"])


async def test_the_ledger_pages_through_the_callers_own_movements(
    api: Api, alice: NewUser, bob: NewUser, db_pool: "asyncpg.Pool[Any]"
) -> None:
    first = await _submit(api, alice, "one")
    second = await _submit(api, alice, "two")
    await _submit(api, bob, "not alice's")
    async with db_pool.acquire() as conn, conn.transaction():
        await record_outcomes(conn, ended=[Ended(first, 1, "succeeded", results=["one"])])

    seen: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        r = await api.client.get("/me/ledger", params=params, headers=auth(alice))
        assert r.status_code == 200, r.text
        page = r.json()
        seen += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    # Newest first: the settle, two reserves, the opening grant.
    assert [(e["kind"], e["amount"], e["request_id"]) for e in seen] == [
        ("settle", 2, str(first)),
        ("reserve", 2, str(second)),
        ("reserve", 2, str(first)),
        ("grant", 100, None),
    ]
    assert [e["id"] for e in seen] == sorted((e["id"] for e in seen), reverse=True)

    bad = await api.client.get("/me/ledger", params={"cursor": "x"}, headers=auth(alice))
    assert (bad.status_code, bad.json()["code"]) == (400, "bad_request")
    assert (await api.client.get("/me/ledger")).status_code == 401


async def test_usage_is_the_callers_own_per_hour_and_offer(
    api: Api, alice: NewUser, bob: NewUser, db_pool: "asyncpg.Pool[Any]"
) -> None:
    done = [await _submit(api, alice, f"a{n}") for n in range(3)]
    theirs = await _submit(api, bob, "b")
    async with db_pool.acquire() as conn, conn.transaction():
        ended = [Ended(i, 1, "succeeded", results=["x"]) for i in [*done[:2], theirs]]
        ended.append(Ended(done[2], 1, "failed", error="boom"))
        await record_outcomes(conn, ended=ended)
    await UsageLoop(db_pool, interval_s=60, lag_s=0).run_once()

    r = await api.client.get("/me/usage", headers=auth(alice))
    assert r.status_code == 200, r.text
    [row] = r.json()
    assert (row["offer"], row["requests"], row["succeeded"], row["failed"], row["credits"]) == (
        "demo/echo",
        3,
        2,
        1,
        4,
    )
    assert set(row).isdisjoint({"handler", "integration", "cost"})
    early = await api.client.get(
        "/me/usage", params={"to": "2000-01-01T00:00:00Z"}, headers=auth(alice)
    )
    assert early.json() == []
