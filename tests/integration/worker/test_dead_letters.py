"""Poison messages: a task delivered ``worker_max_deliveries`` times without finishing goes to
the dead letters and is reported failed; one delivered fewer times still runs."""

from redis.asyncio import Redis

from libs.contracts import DEAD_LETTERS_STREAM, TASKS_GROUP, TASKS_STREAM
from libs.streams import ensure_group, entries_of
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

SETTINGS = FAST.model_copy(update={"worker_max_deliveries": 3, "worker_visibility_timeout_s": 0.3})


async def _crash(redis: Redis, times: int) -> bytes:
    """The task is read, then claimed, by consumers that die without acking, ``times`` in all."""
    reply = await redis.xreadgroup(TASKS_GROUP, "dead-0", {TASKS_STREAM: ">"}, count=1)
    ((entry_id, _),) = entries_of(reply)
    for i in range(1, times):
        await redis.xclaim(TASKS_STREAM, TASKS_GROUP, f"dead-{i}", 0, [entry_id])
    return entry_id


async def test_a_task_delivered_too_often_is_dead_lettered(redis_client: Redis) -> None:
    await ensure_group(redis_client, TASKS_STREAM, TASKS_GROUP)
    poison = task(prompt="poison")
    await add_tasks(redis_client, [poison])
    entry_id = await _crash(redis_client, 3)

    async with running(redis_client, SETTINGS):
        (failed,) = finals(await wait_finals(redis_client, 1))
        await wait_pending(redis_client, 0)

    assert (failed.request_id, failed.kind, failed.attempt) == (poison.request_id, "failed", 1)
    assert "delivered 3 times" in (failed.error or "")
    (dead,) = await dead_letters(redis_client)
    assert dead[1][b"entry_id"] == entry_id
    assert dead[1][b"deliveries"] == b"3"
    assert await redis_client.xlen(TASKS_STREAM) == 0


async def test_a_task_delivered_fewer_times_runs_again(redis_client: Redis) -> None:
    await ensure_group(redis_client, TASKS_STREAM, TASKS_GROUP)
    survivor = task(prompt="again")
    await add_tasks(redis_client, [survivor])
    await _crash(redis_client, 2)

    async with running(redis_client, SETTINGS):
        (done,) = finals(await wait_finals(redis_client, 1))
        await wait_pending(redis_client, 0)

    assert (done.kind, done.results) == ("succeeded", ["again"])
    assert await redis_client.xlen(DEAD_LETTERS_STREAM) == 0


async def test_an_unreadable_poison_task_is_dead_lettered_and_acked(redis_client: Redis) -> None:
    await ensure_group(redis_client, TASKS_STREAM, TASKS_GROUP)
    await redis_client.xadd(TASKS_STREAM, {b"m": b"not json"})
    await _crash(redis_client, 3)

    async with running(redis_client, SETTINGS):
        await wait_pending(redis_client, 0)

    (dead,) = await dead_letters(redis_client)
    assert dead[1][b"m"] == b"not json"
    assert await redis_client.xlen(TASKS_STREAM) == 0
