"""The completion loop after Redis lost data: emptied (its epoch gone) or failed over to a
replica that missed the last writes (another primary's replication id): every unfinished request
absent from the streams is re-driven at once, however recent; nothing runs twice."""

from typing import Any

import asyncpg
from redis.asyncio import Redis

from libs.contracts import (
    EPOCH_KEY,
    RESULTS_GROUP,
    RESULTS_STREAM,
    TASKS_GROUP,
    TASKS_STREAM,
    TaskMessage,
)
from libs.streams import create_redis, encode, ensure_group
from services.worker._limits import FAIR, Limiter
from tests.integration.recon.completion_helpers import (
    completion,
    message,
    state,
    submitted,
)
from tests.integration.recon.conftest import closed_port


async def test_a_new_primary_redrives_what_the_streams_lost_and_steady_runs_leave_work_alone(
    db_pool: "asyncpg.Pool[Any]", redis_client: Redis
) -> None:
    """A failover keeps the epoch (the replica had it) but may lose the last writes: the
    primary's replication id, recorded in the epoch, tells. The same primary: nothing happens."""
    lost = (await submitted(db_pool, age_s=5))[0]
    live = (await submitted(db_pool, age_s=6))[0]
    await redis_client.xadd(TASKS_STREAM, encode(message(TASKS_STREAM, live)))
    loop = completion(db_pool, redis_client)

    steady = await loop.run_once()  # adopts this primary's id into the old-style epoch
    again = await loop.run_once()
    assert (steady.redriven, again.redriven) == (0, 0)
    assert loop.report().redis_recoveries == 0
    replid = (await redis_client.info("replication"))["master_replid"]
    assert await redis_client.get(EPOCH_KEY) == f"steady {replid}".encode()

    await redis_client.set(EPOCH_KEY, "2026-01-01T00:00:00+00:00 " + "0" * 40)  # another primary
    failover = await loop.run_once()

    assert (failover.redriven, failover.failed) == (1, 0)
    assert loop.report().redis_recoveries == 1
    assert str(await redis_client.get(EPOCH_KEY)).endswith(f" {replid}'")
    assert (await state(db_pool, lost))["attempt"] == 2
    assert (await state(db_pool, live))["attempt"] == 1
    assert (await loop.run_once()).redriven == 0


async def test_redis_data_loss_redrives_every_unfinished_request_absent_from_the_streams_at_once(
    db_pool: "asyncpg.Pool[Any]", redis_client: Redis
) -> None:
    lost = [(await submitted(db_pool, age_s=age))[0] for age in (5, 6, 7)]
    live = [(await submitted(db_pool, age_s=age))[0] for age in (4, 8)]
    last_try, user = await submitted(db_pool, attempt=3, age_s=9)
    await redis_client.delete(EPOCH_KEY)  # Redis restarted empty, then the relay wrote these:
    for request_id in live:
        await redis_client.xadd(TASKS_STREAM, encode(message(TASKS_STREAM, request_id)))
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


async def test_a_job_parked_by_fair_scheduling_is_in_flight_until_redis_loses_it(
    db_pool: "asyncpg.Pool[Any]", redis_client: Redis
) -> None:
    """A parked job has left the stream: the live set says it is in flight. Redis restarted
    empty loses both, and the request is re-driven from Postgres."""
    request_id, user = await submitted(db_pool, age_s=5)
    task = TaskMessage(
        request_id=request_id, attempt=1, handler="echo.text", prompt="x", user_id=user.id
    )
    await ensure_group(redis_client, TASKS_STREAM, TASKS_GROUP)
    entry_id = await redis_client.xadd(TASKS_STREAM, encode(task))
    assert isinstance(entry_id, bytes)
    limiter = Limiter(redis_client, lease_ttl_s=30, on_parked=lambda _: None)
    await limiter.park(entry_id, task, task.model_dump_json().encode(), FAIR)
    assert await redis_client.xlen(TASKS_STREAM) == 0
    loop = completion(db_pool, redis_client)

    assert (await loop.run_once()).redriven == 0
    await redis_client.flushdb()  # restarted without persistence
    lost = await loop.run_once()

    assert (lost.redriven, lost.failed) == (1, 0)
    row = await state(db_pool, request_id)
    assert (row["status"], row["attempt"], row["outbox_rows"]) == ("pending", 2, 1)
