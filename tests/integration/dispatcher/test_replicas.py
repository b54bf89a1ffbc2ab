"""Several dispatchers at once: a delivery is never sent by two of them in parallel (the claim
skips what another holds, the lease keeps it), and an attempt that outlived its lease changes
nothing once a newer one was claimed (the attempt number fences the outcome)."""

import asyncio
from collections import Counter
from typing import Any

import asyncpg
from aiohttp import web

from libs.accounts import NewUser
from libs.webhooks import RetryPolicy
from services.dispatcher.delivery import repository
from services.dispatcher.delivery.schemas import Attempt, Claimed
from services.dispatcher.delivery.service import record
from tests.integration.dispatcher.helpers import (
    all_settled,
    attempts,
    create_endpoint,
    deliveries,
    dispatching,
    queue,
    settings_for,
    wait_for,
)
from tests.integration.dispatcher.receiver import Received, Receiver
from tests.support import ServerUrls

POLICY = RetryPolicy(base_s=0.1, cap_s=0.1, retry_for_s=60)


async def test_two_dispatchers_never_send_one_delivery_twice_in_parallel(
    servers: ServerUrls, db_pool: "asyncpg.Pool[Any]", user: NewUser, receiver: Receiver
) -> None:
    endpoint = await create_endpoint(db_pool, user.id, receiver.url)
    receiver.secrets = [endpoint.secret]
    seen: Counter[str] = Counter()

    async def slow_and_unavailable_once(got: Received) -> web.StreamResponse:
        seen[got.webhook_id] += 1
        await asyncio.sleep(0.2)
        return web.Response(status=503 if seen[got.webhook_id] == 1 else 200)

    receiver.answer = slow_and_unavailable_once
    settings = settings_for(servers, webhook_concurrency=4)
    async with dispatching(settings) as first, dispatching(settings) as second:
        ids = await queue(db_pool, user.id, 40)
        await wait_for(lambda: all_settled(db_pool, 40), timeout=30)
        reports = (first.dispatcher.report, second.dispatcher.report)

    assert set(receiver.max_parallel.values()) == {1}
    assert all(r.verified for r in receiver.received)
    assert len(seen) == 40
    assert set(seen.values()) == {2}  # one 503, one 200: nothing sent twice
    assert all(row["status"] == "delivered" for row in (await deliveries(db_pool)).values())
    assert [r.delivered for r in reports] != [40, 0]
    assert [r.delivered for r in reports] != [0, 40]
    assert sum(r.delivered for r in reports) == len(ids)
    assert sum(r.stale for r in reports) == 0


async def claim_one(pool: "asyncpg.Pool[Any]", lease_s: float) -> list[Claimed]:
    async with pool.acquire() as conn:
        claimed, _ = await repository.claim(conn, limit=1, lease_s=lease_s)
    return claimed


async def record_in(pool: "asyncpg.Pool[Any]", delivery: Claimed, attempt: Attempt) -> str:
    async with pool.acquire() as conn, conn.transaction():
        recorded = await record(conn, delivery, attempt, policy=POLICY, disable_after_s=3600)
    return recorded.outcome


async def test_a_lease_holds_a_delivery_until_it_ends(
    servers: ServerUrls, db_pool: "asyncpg.Pool[Any]", user: NewUser
) -> None:
    await create_endpoint(db_pool, user.id, "https://example.com/hook")
    (delivery_id,) = await queue(db_pool, user.id)
    (first,) = await claim_one(db_pool, lease_s=0.5)
    assert (first.id, first.attempt) == (delivery_id, 1)
    assert await claim_one(db_pool, lease_s=0.5) == []
    await asyncio.sleep(0.6)
    (again,) = await claim_one(db_pool, lease_s=0.5)
    assert (again.id, again.attempt) == (delivery_id, 2)


async def test_an_attempt_that_outlived_its_lease_cannot_overwrite_a_newer_one(
    servers: ServerUrls, db_pool: "asyncpg.Pool[Any]", user: NewUser
) -> None:
    await create_endpoint(db_pool, user.id, "https://example.com/hook")
    (delivery_id,) = await queue(db_pool, user.id)
    (late,) = await claim_one(db_pool, lease_s=0.1)
    await asyncio.sleep(0.2)
    (newer,) = await claim_one(db_pool, lease_s=5)
    assert await record_in(db_pool, newer, Attempt(latency_s=0.01, status_code=200)) == (
        "delivered"
    )
    failed = Attempt(latency_s=0.3, status_code=503, error="HTTP 503 Service Unavailable")
    assert await record_in(db_pool, late, failed) == "stale"

    row = (await deliveries(db_pool))[delivery_id]
    assert (row["status"], row["attempts"], row["last_status_code"]) == ("delivered", 2, 200)
    assert [(a["n"], a["status_code"]) for a in await attempts(db_pool, delivery_id)] == [
        (1, 503),
        (2, 200),
    ]


async def test_a_late_success_leaves_the_newer_attempt_in_charge(
    servers: ServerUrls, db_pool: "asyncpg.Pool[Any]", user: NewUser
) -> None:
    await create_endpoint(db_pool, user.id, "https://example.com/hook")
    (delivery_id,) = await queue(db_pool, user.id)
    (late,) = await claim_one(db_pool, lease_s=0.1)
    await asyncio.sleep(0.2)
    (newer,) = await claim_one(db_pool, lease_s=5)
    assert await record_in(db_pool, late, Attempt(latency_s=0.3, status_code=200)) == "stale"
    row = (await deliveries(db_pool))[delivery_id]
    assert (row["status"], row["attempts"]) == ("pending", 2)

    failed = Attempt(latency_s=0.01, status_code=500, error="HTTP 500 Internal Server Error")
    assert await record_in(db_pool, newer, failed) == "retry"
    row = (await deliveries(db_pool))[delivery_id]
    assert (row["status"], row["locked_until"], row["last_status_code"]) == ("pending", None, 500)
