import asyncio
import logging
import uuid
from typing import Any, Literal

import asyncpg
import pytest
from redis.asyncio import Redis

from libs.accounts import NewUser
from libs.contracts import (
    EVENT_BATCH,
    EVENTS_CHANNEL,
    RESULTS_GROUP,
    RESULTS_STREAM,
    RequestEvent,
    ResultMessage,
)
from libs.logs import configure_logging
from libs.streams import encode, ensure_group, entries_of
from services.api.results.consumer import ResultsConsumer
from tests.deals_support import load_deals_catalog, submit_deal, submit_offer
from tests.support import ServerUrls, create_user, load_demo_catalog


@pytest.fixture
async def user(db_pool: "asyncpg.Pool[Any]") -> NewUser:
    await load_demo_catalog(db_pool)
    return await create_user(db_pool, name="carol", credits=100)


async def _submit(pool: "asyncpg.Pool[Any]", user: NewUser, text: str) -> uuid.UUID:
    return await submit_offer(pool, user.id, "demo", "sleep", text)


def _consumer(pool: "asyncpg.Pool[Any]", redis: Redis, name: str = "c1") -> ResultsConsumer:
    return ResultsConsumer(pool, redis, consumer=name, batch=100, block_ms=100, reclaim_idle_s=60)


async def _deliver(
    redis: Redis,
    consumer: ResultsConsumer,
    name: str,
    messages: list[ResultMessage],
) -> None:
    """Put messages on the results stream and let ``consumer`` read and handle them."""
    await ensure_group(redis, RESULTS_STREAM, RESULTS_GROUP)
    for message in messages:
        await redis.xadd(RESULTS_STREAM, encode(message))
    response = await redis.xreadgroup(RESULTS_GROUP, name, {RESULTS_STREAM: ">"}, count=100)
    await consumer.handle(entries_of(response))


def _result(
    request_id: uuid.UUID,
    kind: Literal["started", "succeeded", "failed"],
    **extra: Any,
) -> ResultMessage:
    return ResultMessage(request_id=request_id, attempt=1, kind=kind, worker="w1", **extra)


async def _money(pool: "asyncpg.Pool[Any]", user: NewUser) -> tuple[int, int, list[str]]:
    row = await pool.fetchrow("SELECT balance, reserved FROM users WHERE id = $1", user.id)
    kinds = await pool.fetch(
        "SELECT kind FROM credit_ledger WHERE user_id = $1 AND kind <> 'grant' ORDER BY id",
        user.id,
    )
    assert row is not None
    return row["balance"], row["reserved"], [k["kind"] for k in kinds]


async def _events(redis: Redis) -> Any:
    pubsub = redis.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(EVENTS_CHANNEL)
    await pubsub.get_message(timeout=1)  # the subscription's confirmation
    return pubsub


async def _drain_events(
    pubsub: Any, request_id: uuid.UUID, *, at_least: int = 0
) -> list[RequestEvent]:
    """The events of ``request_id`` published so far: waiting up to 10 s for ``at_least`` of them
    (a busy machine may be slow to deliver), then as long as more keep coming within 0.2 s.
    Others are left out: a channel is the whole server's, whatever database another test run
    on the same server uses."""
    events: list[RequestEvent] = []
    while True:
        wait = 10.0 if len(events) < at_least else 0.2
        message = await pubsub.get_message(timeout=wait)
        if message is None:
            return events
        batch = EVENT_BATCH.validate_json(message["data"])
        events.extend(e for e in batch if e.request_id == request_id)


async def test_success_settles_once_even_when_delivered_twice(
    db_pool: "asyncpg.Pool[Any]", redis_client: Redis, user: NewUser
) -> None:
    request_id = await _submit(db_pool, user, "a")
    consumer = _consumer(db_pool, redis_client)
    pubsub = await _events(redis_client)
    messages = [_result(request_id, "started"), _result(request_id, "succeeded", results=["a"])]
    await _deliver(redis_client, consumer, "c1", messages)
    events = await _drain_events(pubsub, request_id, at_least=2)
    assert [(e.request_id, e.status) for e in events] == [
        (request_id, "running"),
        (request_id, "succeeded"),
    ]
    assert events[1].results == ["a"]
    assert await _money(db_pool, user) == (95, 0, ["reserve", "settle"])

    await _deliver(redis_client, consumer, "c1", messages)
    assert await _drain_events(pubsub, request_id) == []
    assert await _money(db_pool, user) == (95, 0, ["reserve", "settle"])
    row = await db_pool.fetchrow("SELECT status, results FROM requests WHERE id = $1", request_id)
    assert row is not None
    assert (row["status"], row["results"]) == ("succeeded", ["a"])
    pending = await redis_client.xpending(RESULTS_STREAM, RESULTS_GROUP)
    assert pending["pending"] == 0
    assert await redis_client.xlen(RESULTS_STREAM) == 0
    await pubsub.aclose()


async def test_failure_refunds_and_a_late_success_changes_nothing(
    db_pool: "asyncpg.Pool[Any]",
    redis_client: Redis,
    user: NewUser,
    caplog: pytest.LogCaptureFixture,
) -> None:
    configure_logging(service="api")
    logging.getLogger().addHandler(caplog.handler)
    request_id = await _submit(db_pool, user, "b")
    consumer = _consumer(db_pool, redis_client)
    await _deliver(
        redis_client, consumer, "c1", [_result(request_id, "failed", error="provider exploded")]
    )
    assert await _money(db_pool, user) == (100, 0, ["reserve", "refund"])
    logged = [r.msg for r in caplog.records if isinstance(r.msg, dict)]
    assert {"event": "request.failed", "request_id": str(request_id)}.items() <= next(
        m for m in logged if m.get("event") == "request.failed"
    ).items()
    await _deliver(redis_client, consumer, "c1", [_result(request_id, "succeeded", results=["x"])])
    assert await _money(db_pool, user) == (100, 0, ["reserve", "refund"])
    row = await db_pool.fetchrow(
        "SELECT status, error, results FROM requests WHERE id = $1", request_id
    )
    assert row is not None
    assert (row["status"], row["error"], row["results"]) == ("failed", "provider exploded", None)


async def test_concurrent_duplicate_deliveries_charge_once(
    db_pool: "asyncpg.Pool[Any]", redis_client: Redis, user: NewUser
) -> None:
    ids = [await _submit(db_pool, user, f"t{i}") for i in range(20)]
    outcomes = [
        _result(i, "succeeded", results=["ok"]) if n % 2 else _result(i, "failed", error="no")
        for n, i in enumerate(ids)
    ]
    await ensure_group(redis_client, RESULTS_STREAM, RESULTS_GROUP)
    consumers = [_consumer(db_pool, redis_client, f"c{n}") for n in range(4)]
    for _ in consumers:
        for message in outcomes:
            await redis_client.xadd(RESULTS_STREAM, encode(message))
    batches = []
    for n in range(4):
        response = await redis_client.xreadgroup(
            RESULTS_GROUP, f"c{n}", {RESULTS_STREAM: ">"}, count=20
        )
        batches.append(entries_of(response))
    await asyncio.gather(*(c.handle(b) for c, b in zip(consumers, batches, strict=True)))
    balance, reserved, kinds = await _money(db_pool, user)
    assert (balance, reserved) == (100 - 10 * 5, 0)
    assert sorted(kinds) == sorted(["reserve"] * 20 + ["settle"] * 10 + ["refund"] * 10)


async def test_reclaims_results_left_pending_by_a_dead_api_process(
    servers: ServerUrls, db_pool: "asyncpg.Pool[Any]", redis_client: Redis, user: NewUser
) -> None:
    request_id = await _submit(db_pool, user, "c")
    await ensure_group(redis_client, RESULTS_STREAM, RESULTS_GROUP)
    await redis_client.xadd(RESULTS_STREAM, encode(_result(request_id, "succeeded", results=[1])))
    await redis_client.xreadgroup(RESULTS_GROUP, "dead", {RESULTS_STREAM: ">"}, count=10)
    consumer = ResultsConsumer(
        db_pool, redis_client, consumer="alive", batch=10, block_ms=50, reclaim_idle_s=0.2
    )
    task = asyncio.create_task(consumer.run())
    try:
        for _ in range(100):
            status = await db_pool.fetchval("SELECT status FROM requests WHERE id = $1", request_id)
            if status == "succeeded":
                break
            await asyncio.sleep(0.05)
        assert status == "succeeded"
    finally:
        task.cancel()


async def test_reports_of_a_superseded_attempt_change_nothing(
    db_pool: "asyncpg.Pool[Any]", redis_client: Redis, user: NewUser
) -> None:
    request_id = await _submit(db_pool, user, "redriven")
    await db_pool.execute("UPDATE requests SET attempt = 2 WHERE id = $1", request_id)
    consumer = _consumer(db_pool, redis_client)
    stale = [
        _result(request_id, "started"),
        _result(request_id, "succeeded", results=["from the presumed-dead worker"]),
    ]
    await _deliver(redis_client, consumer, "c1", stale)
    row = await db_pool.fetchrow("SELECT status, results FROM requests WHERE id = $1", request_id)
    assert row is not None
    assert (row["status"], row["results"]) == ("pending", None)
    assert await _money(db_pool, user) == (95, 5, ["reserve"])

    current = ResultMessage(
        request_id=request_id, attempt=2, kind="succeeded", results=["fresh"], worker="w2"
    )
    await _deliver(redis_client, consumer, "c1", [current])
    row = await db_pool.fetchrow("SELECT status, results FROM requests WHERE id = $1", request_id)
    assert row is not None
    assert (row["status"], row["results"]) == ("succeeded", ["fresh"])
    assert await _money(db_pool, user) == (95, 0, ["reserve", "settle"])


async def test_a_deal_steps_usage_reaches_its_request_through_the_consumer(
    db_pool: "asyncpg.Pool[Any]", redis_client: Redis
) -> None:
    await load_deals_catalog(db_pool)
    dora = await create_user(db_pool, name="dora", credits=100)
    submitted = await submit_deal(
        db_pool, dora.id, "bundle", {"text": "t", "name": "n", "age": "1"}
    )
    consumer = _consumer(db_pool, redis_client)
    await _deliver(
        redis_client,
        consumer,
        "c1",
        [
            _result(submitted.id, "succeeded", step=0, results=["t"], usage={"output_tokens": 2}),
            _result(submitted.id, "succeeded", step=1, results=["n"], usage={"output_tokens": 5}),
        ],
    )
    row = await db_pool.fetchrow("SELECT status, usage FROM requests WHERE id = $1", submitted.id)
    assert row is not None
    assert (row["status"], row["usage"]) == ("succeeded", {"output_tokens": 7})
