"""The completion loop against the real servers: stuck requests are re-driven exactly once, or
failed and refunded exactly once; live, recent or unseeable work is left alone."""

import asyncio
import uuid
from typing import Any

import asyncpg
import pytest
from redis.asyncio import Redis

from libs.accounts import NewUser
from libs.contracts import (
    EPOCH_KEY,
    EVENT_BATCH,
    EVENTS_CHANNEL,
    LIMITS_LIVE_KEY,
    RESULTS_GROUP,
    RESULTS_STREAM,
    TASKS_GROUP,
    TASKS_STREAM,
    ResultMessage,
    TaskMessage,
)
from libs.streams import create_redis, encode
from services.api.submission.repository import NewRequest, insert_one
from services.recon.completion.service import CompletionLoop
from tests.integration.recon.conftest import closed_port, recon, settings_for
from tests.support import ServerUrls, create_user, load_demo_catalog

PRICE = 5  # demo/sleep
TRACE = f"00-{'a' * 32}-{'b' * 16}-01"


def completion(pool: "asyncpg.Pool[Any]", redis: Redis, *, batch: int = 100) -> CompletionLoop:
    return CompletionLoop(
        pool,
        redis,
        interval_s=60,
        stuck_after_s=120,
        max_attempts=3,
        batch=batch,
        deadline_grace_s=5,
        stream_chunk=2,
    )


async def submitted(
    pool: "asyncpg.Pool[Any]",
    *,
    attempt: int = 1,
    status: str = "pending",
    age_s: float = 600,
) -> tuple[uuid.UUID, NewUser]:
    """A request submitted as the API does, whose outbox row the relay has already published
    (and Redis then lost), last touched ``age_s`` ago by the database clock."""
    await load_demo_catalog(pool)
    user = await create_user(pool, name=f"u{uuid.uuid4().hex[:8]}", credits=10)
    offer_id = await pool.fetchval("SELECT id FROM offers WHERE action = 'sleep'")
    request_id = uuid.uuid4()
    task = TaskMessage(
        request_id=request_id, traceparent=TRACE, attempt=1, handler="echo.delay", prompt="hi"
    )
    new = NewRequest(
        id=request_id,
        user_id=user.id,
        offer_id=offer_id,
        inputs={"text": "hi"},
        prompt="hi",
        price=PRICE,
        traceparent=TRACE,
        payloads=(task.model_dump_json(exclude_none=True),),
        deal_id=None,
    )
    assert await insert_one(pool, new)
    await pool.execute("DELETE FROM outbox WHERE request_id = $1", request_id)
    await pool.execute(
        """UPDATE requests SET attempt = $2, status = $3,
                  updated_at = now() - make_interval(secs => $4)
           WHERE id = $1""",
        request_id,
        attempt,
        status,
        age_s,
    )
    return request_id, user


async def state(pool: "asyncpg.Pool[Any]", request_id: uuid.UUID) -> asyncpg.Record:
    row: asyncpg.Record | None = await pool.fetchrow(
        """SELECT status, attempt, error, now() - updated_at < interval '1 minute' AS touched,
                  (SELECT count(*) FROM outbox WHERE request_id = r.id) AS outbox_rows
           FROM requests r WHERE id = $1""",
        request_id,
    )
    assert row is not None
    return row


@pytest.mark.parametrize("status", ["pending", "running"])
async def test_stuck_request_is_redriven_exactly_once_by_racing_runs(
    db_pool: "asyncpg.Pool[Any]", redis_client: Redis, status: str
) -> None:
    request_id, _ = await submitted(db_pool, status=status)

    first, second = await asyncio.gather(
        completion(db_pool, redis_client).run_once(), completion(db_pool, redis_client).run_once()
    )

    assert first.redriven + second.redriven == 1
    assert first.failed + second.failed == 0
    row = await state(db_pool, request_id)
    assert (row["status"], row["attempt"], row["touched"], row["outbox_rows"]) == (
        status,
        2,
        True,
        1,
    )
    payload = await db_pool.fetchval("SELECT payload FROM outbox WHERE request_id = $1", request_id)
    task = TaskMessage.model_validate_json(payload)
    assert task == TaskMessage(
        request_id=request_id,
        traceparent=TRACE,
        attempt=2,
        handler="echo.delay",
        prompt="hi",
        params={"delay_ms": 300},
        create_qty=1,
    )
    again = await completion(db_pool, redis_client).run_once()
    assert (again.redriven, again.failed) == (0, 0)
    assert (await state(db_pool, request_id))["outbox_rows"] == 1


@pytest.mark.parametrize("stream", [TASKS_STREAM, RESULTS_STREAM])
async def test_request_with_a_message_in_flight_is_left_alone(
    db_pool: "asyncpg.Pool[Any]", redis_client: Redis, stream: str
) -> None:
    request_id, _ = await submitted(db_pool)
    for n in range(3):  # other entries around it, read in chunks of two
        await redis_client.xadd(stream, encode(_message(stream, uuid.uuid4())))
        if n == 1:
            await redis_client.xadd(stream, encode(_message(stream, request_id)))
    loop = completion(db_pool, redis_client)

    live = await loop.run_once()

    assert (live.redriven, live.failed) == (0, 0)
    row = await state(db_pool, request_id)
    assert (row["status"], row["attempt"], row["touched"], row["outbox_rows"]) == (
        "pending",
        1,
        False,
        0,
    )


async def test_request_waiting_on_an_integrations_limits_is_left_alone(
    db_pool: "asyncpg.Pool[Any]", redis_client: Redis
) -> None:
    request_id, _ = await submitted(db_pool)
    await redis_client.sadd(LIMITS_LIVE_KEY, str(request_id))

    live = await completion(db_pool, redis_client).run_once()

    assert (live.redriven, live.failed) == (0, 0)
    assert (await state(db_pool, request_id))["attempt"] == 1


async def test_request_at_max_attempts_is_failed_and_refunded_exactly_once(
    db_pool: "asyncpg.Pool[Any]", redis_client: Redis
) -> None:
    request_id, user = await submitted(db_pool, attempt=3, status="running")
    events: Any = redis_client.pubsub()
    await events.subscribe(EVENTS_CHANNEL)
    try:
        first, second = await asyncio.gather(
            completion(db_pool, redis_client).run_once(),
            completion(db_pool, redis_client).run_once(),
        )
        again = await completion(db_pool, redis_client).run_once()
        message = None
        for _ in range(50):
            message = await events.get_message(ignore_subscribe_messages=True, timeout=0.1)
            if message is not None:
                break
    finally:
        await events.aclose()

    assert (first.failed + second.failed, first.redriven + second.redriven) == (1, 0)
    assert (again.failed, again.redriven) == (0, 0)
    row = await state(db_pool, request_id)
    assert (row["status"], row["attempt"], row["error"], row["outbox_rows"]) == (
        "failed",
        3,
        "no result after 3 attempts",
        0,
    )
    wallet = await db_pool.fetchrow("SELECT balance, reserved FROM users WHERE id = $1", user.id)
    assert wallet is not None
    assert (wallet["balance"], wallet["reserved"]) == (10, 0)
    ledger = await db_pool.fetch(
        "SELECT kind, amount FROM credit_ledger WHERE request_id = $1 ORDER BY id", request_id
    )
    assert [(r["kind"], r["amount"]) for r in ledger] == [("reserve", PRICE), ("refund", PRICE)]
    assert message is not None
    *_, event = EVENT_BATCH.validate_json(message["data"])
    assert (event.request_id, event.status, event.error) == (
        request_id,
        "failed",
        "no result after 3 attempts",
    )


async def test_recent_request_is_left_alone(
    db_pool: "asyncpg.Pool[Any]", redis_client: Redis
) -> None:
    request_id, _ = await submitted(db_pool, age_s=30)

    result = await completion(db_pool, redis_client).run_once()

    assert (result.redriven, result.failed) == (0, 0)
    row = await state(db_pool, request_id)
    assert (row["attempt"], row["outbox_rows"]) == (1, 0)


async def test_a_request_is_redriven_past_its_offers_job_timeout_not_the_stuck_age(
    db_pool: "asyncpg.Pool[Any]", redis_client: Redis
) -> None:
    """demo/sleep gets a 10 s job timeout: a lost request of it is stuck 15 s after it was last
    touched (timeout plus the 5 s grace), not after the loop's 120 s."""
    late, _ = await submitted(db_pool, age_s=16)
    early, _ = await submitted(db_pool, age_s=14)
    await db_pool.execute(
        "UPDATE offers SET params = params || '{\"job_timeout_s\": 10}' WHERE action = 'sleep'"
    )

    result = await completion(db_pool, redis_client).run_once()

    assert (result.redriven, result.failed) == (1, 0)
    assert (await state(db_pool, late))["attempt"] == 2
    assert (await state(db_pool, early))["attempt"] == 1


async def test_unreachable_redis_changes_nothing(db_pool: "asyncpg.Pool[Any]") -> None:
    stuck, _ = await submitted(db_pool)
    last, _ = await submitted(db_pool, attempt=3)
    unreachable = create_redis(f"redis://127.0.0.1:{closed_port()}/0")
    try:
        loop = completion(db_pool, unreachable)
        result = await loop.run_once()
    finally:
        await unreachable.aclose()

    assert result.skipped
    assert loop.report().skipped_runs == 1
    for request_id, attempt in ((stuck, 1), (last, 3)):
        row = await state(db_pool, request_id)
        assert (row["status"], row["attempt"], row["touched"], row["outbox_rows"]) == (
            "pending",
            attempt,
            False,
            0,
        )
    assert await db_pool.fetchval("SELECT count(*) FROM credit_ledger WHERE kind = 'refund'") == 0


async def test_recon_runs_the_loop_and_reports_it_in_health(
    servers: ServerUrls, db_pool: "asyncpg.Pool[Any]"
) -> None:
    request_id, _ = await submitted(db_pool)
    settings = settings_for(servers, recon_completion_interval_s=0.05)
    async with recon(settings) as client:
        for _ in range(100):
            body = (await client.get("/health")).json()
            if body["completion"]["redriven"]:
                break
            await asyncio.sleep(0.05)

    assert body["completion"]["redriven"] == 1
    assert body["completion"]["failed"] == 0
    assert body["completion"]["last_run_at"] is not None
    assert (await state(db_pool, request_id))["attempt"] == 2


async def test_redis_data_loss_redrives_every_unfinished_request_absent_from_the_streams_at_once(
    db_pool: "asyncpg.Pool[Any]", redis_client: Redis
) -> None:
    lost = [(await submitted(db_pool, age_s=age))[0] for age in (5, 6, 7)]
    live = [(await submitted(db_pool, age_s=age))[0] for age in (4, 8)]
    last_try, user = await submitted(db_pool, attempt=3, age_s=9)
    await redis_client.delete(EPOCH_KEY)  # Redis restarted empty, then the relay wrote these:
    for request_id in live:
        await redis_client.xadd(TASKS_STREAM, encode(_message(TASKS_STREAM, request_id)))
    loop = completion(db_pool, redis_client, batch=2)

    first = await loop.run_once()
    again = await loop.run_once()

    assert (first.redriven, first.failed) == (3, 1)
    assert (again.redriven, again.failed) == (0, 0)
    assert loop.report().redis_recoveries == 1
    assert await redis_client.exists(EPOCH_KEY)
    for stream, group in ((TASKS_STREAM, TASKS_GROUP), (RESULTS_STREAM, RESULTS_GROUP)):
        groups = await redis_client.xinfo_groups(stream)
        assert [g["name"].decode() for g in groups] == [group]
    for request_id in lost:
        row = await state(db_pool, request_id)
        assert (row["status"], row["attempt"], row["outbox_rows"]) == ("pending", 2, 1)
    for request_id in live:
        row = await state(db_pool, request_id)
        assert (row["attempt"], row["outbox_rows"]) == (1, 0)
    row = await state(db_pool, last_try)
    assert (row["status"], row["error"]) == ("failed", "no result after 3 attempts")
    wallet = await db_pool.fetchrow("SELECT balance, reserved FROM users WHERE id = $1", user.id)
    assert wallet is not None
    assert (wallet["balance"], wallet["reserved"]) == (10, 0)


async def test_data_loss_sweep_waits_for_redis_to_answer(db_pool: "asyncpg.Pool[Any]") -> None:
    request_id, _ = await submitted(db_pool, age_s=5)
    unreachable = create_redis(f"redis://127.0.0.1:{closed_port()}/0")
    try:
        result = await completion(db_pool, unreachable).run_once()
    finally:
        await unreachable.aclose()

    assert result.skipped
    assert (await state(db_pool, request_id))["attempt"] == 1


def _message(stream: str, request_id: uuid.UUID) -> TaskMessage | ResultMessage:
    if stream == TASKS_STREAM:
        return TaskMessage(request_id=request_id, attempt=1, handler="echo.text", prompt="x")
    return ResultMessage(request_id=request_id, attempt=1, kind="started", worker="w")
