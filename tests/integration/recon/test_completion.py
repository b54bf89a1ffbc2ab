"""The completion loop against the real servers: stuck requests are re-driven exactly once, or
failed and refunded exactly once; live, recent or unseeable work is left alone."""

import asyncio
import uuid
from typing import Any

import asyncpg
import pytest
from redis.asyncio import Redis

from libs.contracts import (
    EVENT_BATCH,
    EVENTS_CHANNEL,
    LIMITS_LIVE_KEY,
    RESULTS_STREAM,
    TASKS_STREAM,
    TaskMessage,
)
from libs.contracts.files import FileRef, input_file_id
from libs.streams import create_redis, encode
from tests.integration.recon.completion_helpers import (
    PRICE,
    TRACE,
    completion,
    input_file,
    message,
    state,
    submitted,
)
from tests.integration.recon.conftest import closed_port, recon, settings_for
from tests.support import ServerUrls


@pytest.mark.parametrize(
    ("status", "with_file"), [("pending", False), ("running", False), ("pending", True)]
)
async def test_stuck_request_is_redriven_exactly_once_by_racing_runs(
    db_pool: "asyncpg.Pool[Any]", redis_client: Redis, status: str, with_file: bool
) -> None:
    """A re-driven task is the first one again, its input files and its user included (fair
    scheduling keeps it among that user's jobs)."""
    request_id, _ = await submitted(db_pool, status=status, with_file=with_file)

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
        files={"image": input_file(request_id).ref()} if with_file else None,
        user_id=await db_pool.fetchval("SELECT user_id FROM requests WHERE id = $1", request_id),
    )
    if with_file:
        assert task.files == {
            "image": FileRef(
                id=input_file_id(request_id, "image"),
                sha256="ab" * 32,
                media_type="image/png",
                bytes=123,
                width=3,
                height=2,
            )
        }
    again = await completion(db_pool, redis_client).run_once()
    assert (again.redriven, again.failed) == (0, 0)
    assert (await state(db_pool, request_id))["outbox_rows"] == 1


@pytest.mark.parametrize("stream", [TASKS_STREAM, RESULTS_STREAM])
async def test_request_with_a_message_in_flight_is_left_alone(
    db_pool: "asyncpg.Pool[Any]", redis_client: Redis, stream: str
) -> None:
    request_id, _ = await submitted(db_pool)
    for n in range(3):  # other entries around it, read in chunks of two
        await redis_client.xadd(stream, encode(message(stream, uuid.uuid4())))
        if n == 1:
            await redis_client.xadd(stream, encode(message(stream, request_id)))
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
