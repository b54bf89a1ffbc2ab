"""Deals across the real processes: parallel offers with an add-on, a three-step pipeline with
each mode, and a pipeline whose middle step fails; results and charges checked."""

import asyncio
from typing import Any

import asyncpg
import httpx
import pytest

from tests.deals_support import load_deals_catalog
from tests.e2e.conftest import Stack

pytestmark = pytest.mark.e2e


async def _final(client: httpx.AsyncClient, request_id: str) -> dict[str, Any]:
    async with asyncio.timeout(30):
        while True:
            view: dict[str, Any] = (await client.get(f"/svc/request/{request_id}")).json()
            if view["status"] in ("succeeded", "failed"):
                return view
            await asyncio.sleep(0.1)


async def _ledger(pool: "asyncpg.Pool[Any]", request_id: str) -> list[tuple[int | None, str, int]]:
    rows = await pool.fetch(
        "SELECT step, kind, amount FROM credit_ledger WHERE request_id = $1 "
        "ORDER BY coalesce(step, -1), kind",
        request_id,
    )
    return [(r["step"], r["kind"], r["amount"]) for r in rows]


async def _balanced(pool: "asyncpg.Pool[Any]", stack: Stack) -> tuple[int, int]:
    user = await pool.fetchrow("SELECT balance, reserved FROM users WHERE id = $1", stack.user.id)
    assert user is not None
    ledger = await pool.fetchrow(
        """SELECT sum(CASE kind WHEN 'reserve' THEN -amount WHEN 'settle' THEN 0
                              ELSE amount END) AS balance,
                  sum(CASE kind WHEN 'reserve' THEN amount WHEN 'grant' THEN 0
                              ELSE -amount END) AS reserved
           FROM credit_ledger WHERE user_id = $1""",
        stack.user.id,
    )
    assert ledger is not None
    assert (user["balance"], user["reserved"]) == (ledger["balance"], ledger["reserved"])
    return user["balance"], user["reserved"]


async def test_deals_run_through_the_real_processes(
    stack: Stack, client: httpx.AsyncClient, db_pool: "asyncpg.Pool[Any]"
) -> None:
    await load_deals_catalog(db_pool)
    bundle = await client.post(
        "/deal/bundle",
        json={"inputs": {"text": "hi", "name": "Ada", "age": "36"}, "addons": ["demo/sleep"]},
    )
    chain = await client.post("/deal/chain", json={"inputs": {"text": "hi"}})
    broken = await client.post("/deal/broken-chain", json={"inputs": {"text": "hi"}})
    assert [r.status_code for r in (bundle, chain, broken)] == [202, 202, 202], broken.text
    assert [r.json()["price"] for r in (bundle, chain, broken)] == [8, 30, 47]

    # Parallel offers and an add-on: every step runs, each settles its share.
    view = await _final(client, bundle.json()["id"])
    assert view["status"] == "succeeded"
    assert [s["results"] for s in view["steps"]] == [["hi"], ["Hello Ada, you are 36."], ["hi"]]
    assert view["results"] == ["hi", "Hello Ada, you are 36.", "hi"]
    assert await _ledger(db_pool, view["id"]) == [
        (None, "reserve", 8),
        (0, "settle", 2),
        (1, "settle", 3),
        (2, "settle", 3),
    ]

    # overwrite, then extend, then pass_through: each step took the previous output as input.
    view = await _final(client, chain.json()["id"])
    assert view["status"] == "succeeded"
    assert [s["results"] for s in view["steps"]] == [
        ["A[hi]"],
        ["B[A[hi]]"],
        ["C[A[hi]\n\nB[A[hi]]|hi]"],
    ]
    assert [s["mode"] for s in view["steps"]] == ["overwrite", "extend", "pass_through"]
    assert view["results"] == ["A[hi]", "B[A[hi]]"]
    assert await _ledger(db_pool, view["id"]) == [
        (None, "reserve", 30),
        (0, "settle", 5),
        (1, "settle", 10),
        (2, "settle", 15),
    ]

    # The middle step fails: the last never runs; only what was delivered is charged.
    view = await _final(client, broken.json()["id"])
    assert view["status"] == "failed"
    assert [s["status"] for s in view["steps"]] == ["succeeded", "failed", "failed"]
    assert view["steps"][0]["results"] == ["A[hi]"]
    assert "simulated failure" in view["steps"][1]["error"]
    assert view["steps"][2]["error"] == "not run: step 1 failed"
    assert view["steps"][2]["started_at"] is None
    assert view["error"].startswith("step 1 (demo/flaky) failed")
    assert await _ledger(db_pool, view["id"]) == [
        (None, "reserve", 47),
        (0, "settle", 10),
        (1, "refund", 7),
        (2, "refund", 30),
    ]

    assert await _balanced(db_pool, stack) == (stack.credits - 8 - 30 - 10, 0)
    me = (await client.get("/me")).json()
    assert (me["balance"], me["reserved"]) == (stack.credits - 48, 0)
