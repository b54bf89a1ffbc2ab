"""Poison messages: a task that took its worker down ``worker_max_crashes`` times while running
in quarantine goes to the dead letters and is reported failed; one delivered as often but never
fatal in quarantine still runs (it was only beside a poison when workers died)."""

from redis.asyncio import Redis

from libs.contracts import DEAD_LETTERS_STREAM, TASKS_GROUP, TASKS_STREAM
from libs.streams import ensure_group, entries_of
from services.worker._dead_letters import QUARANTINE_KEY, quarantine_start
from tests.integration.worker.helpers import (
    FAST,
    add_tasks,
    dead_letters,
    finals,
    running,
    task,
    wait_finals,
    wait_pending,
)

SETTINGS = FAST.model_copy(update={"worker_max_crashes": 2, "worker_visibility_timeout_s": 0.3})


async def _crash(redis: Redis, times: int, *, in_quarantine: int = 0) -> bytes:
    """The task is read, then claimed, by consumers that die without acking, ``times`` in all;
    the last ``in_quarantine`` of them were quarantined runs (which leave their count behind)."""
    reply = await redis.xreadgroup(TASKS_GROUP, "dead-0", {TASKS_STREAM: ">"}, count=1)
    ((entry_id, _),) = entries_of(reply)
    for i in range(1, times):
        await redis.xclaim(TASKS_STREAM, TASKS_GROUP, f"dead-{i}", 0, [entry_id])
    for _ in range(in_quarantine):
        await quarantine_start(redis, entry_id)
    return entry_id


async def test_a_task_that_took_its_workers_down_in_quarantine_is_dead_lettered(
    redis_client: Redis,
) -> None:
    await ensure_group(redis_client, TASKS_STREAM, TASKS_GROUP)
    poison = task(prompt="poison")
    await add_tasks(redis_client, [poison])
    entry_id = await _crash(redis_client, 4, in_quarantine=2)

    async with running(redis_client, SETTINGS):
        (failed,) = finals(await wait_finals(redis_client, 1))
        await wait_pending(redis_client, 0)

    assert (failed.request_id, failed.kind, failed.attempt) == (poison.request_id, "failed", 1)
    assert failed.tier == "default"  # a stream entry: in arrival order, served at default
    assert "delivered 4 times" in (failed.error or "")
    assert "2 of them while it ran alone in quarantine" in (failed.error or "")
    (dead,) = await dead_letters(redis_client)
    assert dead[1][b"entry_id"] == entry_id
    assert (dead[1][b"deliveries"], dead[1][b"crashes"]) == (b"4", b"2")
    assert await redis_client.xlen(TASKS_STREAM) == 0


async def test_a_task_delivered_often_but_never_fatal_in_quarantine_runs_again(
    redis_client: Redis,
) -> None:
    await ensure_group(redis_client, TASKS_STREAM, TASKS_GROUP)
    survivor = task(prompt="again")
    await add_tasks(redis_client, [survivor])
    entry_id = await _crash(redis_client, 6, in_quarantine=1)

    async with running(redis_client, SETTINGS):
        (done,) = finals(await wait_finals(redis_client, 1))
        await wait_pending(redis_client, 0)

    assert (done.kind, done.results) == ("succeeded", ["again"])
    assert await redis_client.xlen(DEAD_LETTERS_STREAM) == 0
    assert not await redis_client.exists(QUARANTINE_KEY + entry_id.decode())  # it finished


async def test_an_unreadable_poison_task_is_dead_lettered_and_acked(redis_client: Redis) -> None:
    await ensure_group(redis_client, TASKS_STREAM, TASKS_GROUP)
    await redis_client.xadd(TASKS_STREAM, {b"m": b"not json"})
    await _crash(redis_client, 3, in_quarantine=2)

    async with running(redis_client, SETTINGS):
        await wait_pending(redis_client, 0)

    (dead,) = await dead_letters(redis_client)
    assert dead[1][b"m"] == b"not json"
    assert await redis_client.xlen(TASKS_STREAM) == 0
