"""The whole pipeline across real processes: HTTP in, WebSocket out, credits that add up."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from redis.asyncio import Redis
from websockets.asyncio.client import ClientConnection, connect

from libs.contracts import TASKS_GROUP, TASKS_STREAM
from tests.e2e.conftest import Stack

pytestmark = pytest.mark.e2e


Finals = dict[str, dict[str, Any]]


async def _collect_finals(ws: ClientConnection, finals: Finals) -> None:
    async for raw in ws:
        state = orjson.loads(raw)
        if state["status"] in ("succeeded", "failed"):
            finals[state["id"]] = state


@asynccontextmanager
async def _watching(stack: Stack) -> AsyncIterator[Finals]:
    """The final states the caller's ``/ws`` delivers, by request id, as they arrive."""
    finals: Finals = {}
    async with connect(f"{stack.ws_url}/ws", additional_headers=stack.headers) as ws:
        reader = asyncio.create_task(_collect_finals(ws, finals))
        try:
            yield finals
        finally:
            reader.cancel()


async def _submit_all(
    client: httpx.AsyncClient, path: str, texts: list[str], concurrency: int = 20
) -> list[str]:
    ids: list[str] = []
    queue = iter(texts)

    async def submitter() -> None:
        for text in queue:
            r = await client.post(path, json={"text": text})
            assert r.status_code == 202, r.text
            ids.append(r.json()["id"])

    await asyncio.gather(*(submitter() for _ in range(concurrency)))
    return ids


async def _wait_for(finals: Finals, ids: list[str], timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while not all(i in finals for i in ids):
            await asyncio.sleep(0.05)


async def _assert_charged_once(
    pool: "asyncpg.Pool[Any]", stack: Stack, ids: list[str], price: int
) -> None:
    rows = await pool.fetch(
        "SELECT status, count(*) FROM requests WHERE user_id = $1 GROUP BY status", stack.user.id
    )
    assert {r["status"]: r["count"] for r in rows} == {"succeeded": len(ids)}
    ledger = await pool.fetch(
        """SELECT request_id, kind, count(*) AS n, sum(amount) AS total FROM credit_ledger
           WHERE user_id = $1 AND request_id IS NOT NULL GROUP BY request_id, kind""",
        stack.user.id,
    )
    per_request: dict[uuid.UUID, dict[str, int]] = {}
    for row in ledger:
        assert row["n"] == 1, "one ledger row per request and kind"
        per_request.setdefault(row["request_id"], {})[row["kind"]] = row["total"]
    assert len(per_request) == len(ids)
    assert all(kinds == {"reserve": price, "settle": price} for kinds in per_request.values())
    user = await pool.fetchrow("SELECT balance, reserved FROM users WHERE id = $1", stack.user.id)
    assert user is not None
    assert (user["balance"], user["reserved"]) == (stack.credits - price * len(ids), 0)
    ledger_balance = await pool.fetchval(
        """SELECT sum(CASE kind WHEN 'grant' THEN amount WHEN 'refund' THEN amount
                              WHEN 'reserve' THEN -amount ELSE 0 END)
           FROM credit_ledger WHERE user_id = $1""",
        stack.user.id,
    )
    assert ledger_balance == user["balance"]


async def test_200_requests_over_http_all_final_over_websocket(
    stack: Stack, client: httpx.AsyncClient, db_pool: "asyncpg.Pool[Any]"
) -> None:
    async with _watching(stack) as finals:
        texts = [f"hello {n}" for n in range(200)]
        ids = await _submit_all(client, "/svc/demo/echo", texts)
        await _wait_for(finals, ids, timeout=60)
    assert len(set(ids)) == 200
    assert {finals[i]["status"] for i in ids} == {"succeeded"}
    assert sorted(finals[i]["results"][0] for i in ids) == sorted(texts)
    one = (await client.get(f"/svc/request/{ids[0]}")).json()
    assert one["status"] == "succeeded"
    await _assert_charged_once(db_pool, stack, ids, price=2)


async def test_kill_9_worker_with_jobs_in_flight_loses_nothing_charges_once(
    stack: Stack, client: httpx.AsyncClient, db_pool: "asyncpg.Pool[Any]", redis_client: Redis
) -> None:
    async with _watching(stack) as finals:
        ids = await _submit_all(client, "/svc/demo/slow", [f"job {n}" for n in range(60)])
        victim_pid = stack.supervisor.pids["relai-worker-1"]
        victim_held = 0
        async with asyncio.timeout(10):
            while victim_held == 0:
                consumers = await redis_client.xinfo_consumers(TASKS_STREAM, TASKS_GROUP)
                victim_held = sum(
                    c["pending"] for c in consumers if c["name"].decode().endswith(f"-{victim_pid}")
                )
                await asyncio.sleep(0.05)
        stack.kill("relai-worker-1")
        await _wait_for(finals, ids, timeout=60)
    assert victim_held > 0
    assert {finals[i]["status"] for i in ids} == {"succeeded"}
    await _assert_charged_once(db_pool, stack, ids, price=4)


async def test_provider_failures_end_failed_over_websocket_and_are_refunded(
    stack: Stack, client: httpx.AsyncClient, db_pool: "asyncpg.Pool[Any]"
) -> None:
    async with _watching(stack) as finals:
        ids = await _submit_all(client, "/svc/demo/flaky", [f"doomed {n}" for n in range(20)])
        await _wait_for(finals, ids, timeout=30)
    assert {finals[i]["status"] for i in ids} == {"failed"}
    assert all(finals[i]["error"] for i in ids)
    me = (await client.get("/me")).json()
    assert (me["balance"], me["reserved"]) == (stack.credits, 0)
    kinds = await db_pool.fetch(
        "SELECT kind, count(*) FROM credit_ledger WHERE user_id = $1 AND kind <> 'grant' "
        "GROUP BY kind",
        stack.user.id,
    )
    assert {k["kind"]: k["count"] for k in kinds} == {"reserve": 20, "refund": 20}
