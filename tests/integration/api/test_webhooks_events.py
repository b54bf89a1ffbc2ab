"""Webhook events are queued by every path that records a final state, in its transaction, once
each: results through the results consumer (single requests and deals' steps), a user's cancel,
expiry. Only enabled endpoints subscribed to the event get one; a one-off URL gets its request's
events (never steps'); a second delivery of an outcome queues nothing more, and an outcome rolled
back leaves no delivery."""

import uuid
from datetime import datetime
from typing import Any, Literal

import asyncpg
import pytest
from redis.asyncio import Redis

from libs.accounts import NewUser
from libs.contracts import RESULTS_GROUP, RESULTS_STREAM, ResultMessage
from libs.contracts.webhooks import REQUEST_EVENTS, STEP_EVENTS, WEBHOOK_EVENTS
from libs.outcomes import Ended, expire_due, record_outcomes
from libs.streams import encode, ensure_group, entries_of
from services.api.auth.service import Principal
from services.api.results.consumer import ResultsConsumer
from services.api.submission.cancel import cancel
from tests.deals_support import load_deals_catalog, submit_deal, submit_offer
from tests.support import create_user
from tests.webhooks_support import (
    HOOK,
    add_endpoint,
    add_one_off_secret,
    deliveries,
    events_of,
    payload_of,
)

ONE_OFF = "https://93.184.216.36/one-off"


@pytest.fixture
async def user(db_pool: "asyncpg.Pool[Any]") -> NewUser:
    await load_deals_catalog(db_pool)
    return await create_user(db_pool, name="erin", credits=1000)


def _principal(user: NewUser) -> Principal:
    return Principal(id=user.id, name=user.name, role="user")


async def _deliver(redis: Redis, pool: "asyncpg.Pool[Any]", messages: list[ResultMessage]) -> None:
    """Results read and written by the API's results consumer, as workers' results are."""
    consumer = ResultsConsumer(
        pool, redis, consumer="c1", batch=100, block_ms=100, reclaim_idle_s=60
    )
    await ensure_group(redis, RESULTS_STREAM, RESULTS_GROUP)
    for message in messages:
        await redis.xadd(RESULTS_STREAM, encode(message))
    response = await redis.xreadgroup(RESULTS_GROUP, "c1", {RESULTS_STREAM: ">"}, count=100)
    await consumer.handle(entries_of(response))


def _result(
    request_id: uuid.UUID,
    kind: Literal["started", "succeeded", "failed"],
    step: int | None = None,
    **extra: Any,
) -> ResultMessage:
    return ResultMessage(
        request_id=request_id, attempt=1, kind=kind, worker="w1", step=step, **extra
    )


async def test_success_and_failure_through_the_results_consumer(
    db_pool: "asyncpg.Pool[Any]", redis_client: Redis, user: NewUser
) -> None:
    everything = await add_endpoint(db_pool, user.id, events=WEBHOOK_EVENTS)
    failures = await add_endpoint(db_pool, user.id, events=["request.failed"])
    await add_endpoint(db_pool, user.id, enabled=False)  # gets nothing
    other = await create_user(db_pool, name="frank", credits=10)
    await add_endpoint(db_pool, other.id)  # another user's: nothing either
    good = await submit_offer(db_pool, user.id, "demo", "echo", "a")
    bad = await submit_offer(db_pool, user.id, "demo", "echo", "b")
    assert await deliveries(db_pool) == []  # a submission ends nothing

    ended = [
        _result(good, "started"),
        _result(good, "succeeded", results=["a"]),
        _result(bad, "failed", error="boom"),
    ]
    await _deliver(redis_client, db_pool, ended)
    rows = await deliveries(db_pool)
    assert events_of(rows) == sorted(
        [
            (str(everything), good, "request.succeeded"),
            (str(everything), bad, "request.failed"),
            (str(failures), bad, "request.failed"),
        ],
        key=str,
    )
    for row in rows:
        payload = payload_of(row)
        request = await db_pool.fetchrow(
            "SELECT created_at, finished_at FROM requests WHERE id = $1", row["request_id"]
        )
        assert request is not None
        assert datetime.fromisoformat(payload["data"]["finished_at"]) == request["finished_at"]
        assert datetime.fromisoformat(payload["data"]["created_at"]) == request["created_at"]
        assert (row["status"], row["attempts"], row["user_id"]) == ("pending", 0, user.id)
    # Each delivery has its own id; a receiver gets one event per endpoint.
    assert len({r["id"] for r in rows}) == 3

    # The same results again (a redelivery of the stream's entries) change nothing.
    await _deliver(redis_client, db_pool, ended)
    assert len(await deliveries(db_pool)) == 3


async def test_a_users_cancel_queues_request_cancelled(
    db_pool: "asyncpg.Pool[Any]", redis_client: Redis, user: NewUser
) -> None:
    endpoint = await add_endpoint(db_pool, user.id, events=WEBHOOK_EVENTS)
    single = await submit_offer(db_pool, user.id, "demo", "sleep", "x")
    deal = await submit_deal(db_pool, user.id, "bundle", {"text": "t", "name": "n", "age": "1"})

    await cancel(db_pool, redis_client, user=_principal(user), request_id=single)
    await cancel(db_pool, redis_client, user=_principal(user), request_id=deal.id)
    # Cancelling again answers the same and queues nothing more.
    await cancel(db_pool, redis_client, user=_principal(user), request_id=single)
    rows = await deliveries(db_pool)
    assert events_of(rows) == sorted(
        [
            (str(endpoint), single, "request.cancelled"),
            (str(endpoint), deal.id, "request.cancelled"),
        ],
        key=str,
    )
    for row in rows:
        payload_of(row)


async def test_expiry_queues_request_expired(db_pool: "asyncpg.Pool[Any]", user: NewUser) -> None:
    endpoint = await add_endpoint(db_pool, user.id)
    unsubscribed = await add_endpoint(db_pool, user.id, events=["request.succeeded"])
    single = await submit_offer(db_pool, user.id, "demo", "echo", "old")
    deal = await submit_deal(db_pool, user.id, "bundle", {"text": "t", "name": "n", "age": "1"})
    await db_pool.execute("UPDATE offers SET expiration = 60")
    await db_pool.execute("UPDATE requests SET created_at = now() - interval '1 hour'")

    async with db_pool.acquire() as conn, conn.transaction():
        expired = await expire_due(conn, limit=10)
    assert {r["id"] for r in expired} == {single, deal.id}
    async with db_pool.acquire() as conn, conn.transaction():
        assert await expire_due(conn, limit=10) == []
    rows = await deliveries(db_pool)
    assert events_of(rows) == sorted(
        [
            (str(endpoint), single, "request.expired"),
            (str(endpoint), deal.id, "request.expired"),
        ],
        key=str,
    )
    assert all(r["endpoint_id"] != unsubscribed for r in rows)
    for row in rows:
        payload_of(row)


async def test_deal_steps_are_sent_only_to_endpoints_that_asked_for_them(
    db_pool: "asyncpg.Pool[Any]", redis_client: Redis, user: NewUser
) -> None:
    steps = await add_endpoint(db_pool, user.id, events=STEP_EVENTS)
    requests_only = await add_endpoint(db_pool, user.id, events=REQUEST_EVENTS)
    await add_one_off_secret(db_pool, user.id)
    deal = await submit_deal(
        db_pool,
        user.id,
        "bundle",
        {"text": "t", "name": "n", "age": "1"},
        webhook_url=ONE_OFF,
    )
    await _deliver(redis_client, db_pool, [_result(deal.id, "succeeded", step=0, results=["t"])])
    rows = await deliveries(db_pool)
    assert events_of(rows) == [(str(steps), deal.id, "step.succeeded")]
    assert payload_of(rows[0], step=0)["data"]["status"] == "succeeded"

    await _deliver(redis_client, db_pool, [_result(deal.id, "failed", step=1, error="boom")])
    rows = await deliveries(db_pool)
    assert events_of(rows) == sorted(
        [
            (str(steps), deal.id, "step.succeeded"),
            (str(steps), deal.id, "step.failed"),
            (str(requests_only), deal.id, "request.failed"),
            (ONE_OFF, deal.id, "request.failed"),  # the one-off URL: the request's end only
        ],
        key=str,
    )
    for row in rows:
        step = (
            1 if row["event"] == "step.failed" else 0 if row["event"] == "step.succeeded" else None
        )
        payload_of(row, step=step)

    # The step's report again changes nothing.
    await _deliver(redis_client, db_pool, [_result(deal.id, "failed", step=1, error="boom")])
    assert len(await deliveries(db_pool)) == 4


async def test_the_one_off_url_gets_its_requests_events(
    db_pool: "asyncpg.Pool[Any]", redis_client: Redis, user: NewUser
) -> None:
    await add_one_off_secret(db_pool, user.id)
    request_id = await submit_offer(db_pool, user.id, "demo", "echo", "a", webhook_url=ONE_OFF)
    other = await submit_offer(db_pool, user.id, "demo", "echo", "b")
    assert (
        await db_pool.fetchval("SELECT webhook_url FROM requests WHERE id = $1", request_id)
        == ONE_OFF
    )
    await _deliver(
        redis_client,
        db_pool,
        [
            _result(request_id, "succeeded", results=["a"]),
            _result(other, "succeeded", results=["b"]),
        ],
    )
    rows = await deliveries(db_pool)
    assert events_of(rows) == [(ONE_OFF, request_id, "request.succeeded")]
    (row,) = rows
    # Signed with the owner's one-off secret: no endpoint, the URL on the delivery.
    assert (row["endpoint_id"], row["url"], row["user_id"]) == (None, ONE_OFF, user.id)
    payload_of(row)


async def test_an_outcome_rolled_back_leaves_no_delivery(
    db_pool: "asyncpg.Pool[Any]", redis_client: Redis, user: NewUser
) -> None:
    await add_endpoint(db_pool, user.id)
    request_id = await submit_offer(db_pool, user.id, "demo", "echo", "a")

    class Crash(Exception):
        pass

    async def record_then_crash() -> None:
        async with db_pool.acquire() as conn, conn.transaction():
            rows = await record_outcomes(conn, ended=[Ended(request_id, 1, "succeeded", ["a"])])
            assert [r["status"] for r in rows] == ["succeeded"]
            assert await conn.fetchval("SELECT count(*) FROM webhook_deliveries") == 1
            raise Crash

    with pytest.raises(Crash):
        await record_then_crash()
    assert await deliveries(db_pool) == []
    status = await db_pool.fetchval("SELECT status FROM requests WHERE id = $1", request_id)
    assert status == "pending"

    # Recorded for good, it is queued once.
    await record_outcomes(db_pool, ended=[Ended(request_id, 1, "succeeded", ["a"])])
    await record_outcomes(db_pool, ended=[Ended(request_id, 1, "succeeded", ["a"])])
    assert [r["event"] for r in await deliveries(db_pool)] == ["request.succeeded"]


async def test_an_endpoint_added_later_gets_only_later_events(
    db_pool: "asyncpg.Pool[Any]", redis_client: Redis, user: NewUser
) -> None:
    first = await submit_offer(db_pool, user.id, "demo", "echo", "a")
    await _deliver(redis_client, db_pool, [_result(first, "succeeded", results=["a"])])
    assert await deliveries(db_pool) == []
    endpoint = await add_endpoint(db_pool, user.id, url=HOOK)
    second = await submit_offer(db_pool, user.id, "demo", "echo", "b")
    await _deliver(redis_client, db_pool, [_result(second, "succeeded", results=["b"])])
    assert events_of(await deliveries(db_pool)) == [(str(endpoint), second, "request.succeeded")]
