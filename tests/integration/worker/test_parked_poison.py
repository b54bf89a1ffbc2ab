"""Poison among parked jobs (fair scheduling, or an integration's limits): counted by the leases
that expired on them, since a parked job has no stream entry to count deliveries. From its
second expired lease a job runs in quarantine; one that took its workers down
``worker_max_crashes`` times there is dead-lettered and reported failed; one that never did
still runs."""

import asyncio

import pytest
from redis.asyncio import Redis

from libs.contracts import (
    DEAD_LETTERS_STREAM,
    LIMITS_LIVE_KEY,
    TASKS_GROUP,
    TASKS_STREAM,
    TaskMessage,
)
from libs.contracts.limits import FAIR_QUEUE, held_key, leases_key, tier_queue
from libs.contracts.tiers import Tier
from libs.streams import ensure_group
from services.worker._limits import TIER_LIMITS, Limiter, Taken
from tests.integration.worker.helpers import (
    FAST,
    add_tasks,
    dead_letters,
    finals,
    running,
    task,
    wait_finals,
)

SETTINGS = FAST.model_copy(update={"worker_max_crashes": 2, "worker_scheduling": "fair"})
LEASE_S = 0.2


async def _held_and_lost(redis: Redis, message: TaskMessage, times: int) -> Taken:
    """Park ``message`` in its tier's queue, then take it ``times`` times under leases that
    expire (workers that die holding it); the last take's view of it."""
    await ensure_group(redis, TASKS_STREAM, TASKS_GROUP)
    (entry_id,) = await add_tasks(redis, [message])
    dying = Limiter(redis, lease_ttl_s=LEASE_S, on_parked=lambda _: None)
    limits = TIER_LIMITS[message.tier]
    await dying.park(entry_id, message, message.model_dump_json().encode(), limits)
    last = None
    for _ in range(times):
        taken = await dying.take(limits.integration)
        assert isinstance(taken, list)
        (last,) = taken
        await asyncio.sleep(LEASE_S + 0.05)
    assert last is not None
    return last


async def test_expired_leases_are_counted_and_runs_in_quarantine_become_crashes(
    redis_client: Redis,
) -> None:
    message = task(prompt="counted")
    seen = await _held_and_lost(redis_client, message, 4)
    # Takes 1 and 2 ran normally; 3 and 4 (after two expired leases) in quarantine.
    assert (seen.expired, seen.crashes) == (3, 1)
    again = await Limiter(redis_client, lease_ttl_s=5, on_parked=lambda _: None).take(FAIR_QUEUE)
    assert isinstance(again, list)
    assert (again[0].expired, again[0].crashes) == (4, 2)
    assert again[0].task == message.model_dump_json().encode()


@pytest.mark.parametrize("tier", ["default", "priority"])
async def test_a_parked_job_that_took_its_workers_down_in_quarantine_is_dead_lettered(
    redis_client: Redis, tier: Tier
) -> None:
    poison = task(prompt="poison").model_copy(update={"tier": tier})
    await _held_and_lost(redis_client, poison, 4)  # its next take has 2 crashes: the limit

    async with running(redis_client, SETTINGS):
        (failed,) = finals(await wait_finals(redis_client, 1))

    assert (failed.request_id, failed.kind) == (poison.request_id, "failed")
    assert failed.tier == tier  # taken from its tier's queue: served (and refunded) at it
    assert "lease expired 4 times" in (failed.error or "")
    assert "2 of them while it ran alone in quarantine" in (failed.error or "")
    (dead,) = await dead_letters(redis_client)
    assert TaskMessage.model_validate_json(dead[1][b"m"]).request_id == poison.request_id
    assert (dead[1][b"deliveries"], dead[1][b"crashes"]) == (b"4", b"2")
    assert dead[1][b"integration"] == tier_queue(tier).encode()
    assert await redis_client.zcard(leases_key(tier_queue(tier))) == 0
    assert await redis_client.hlen(held_key(tier_queue(tier))) == 0
    assert await redis_client.scard(LIMITS_LIVE_KEY) == 0


async def test_a_parked_job_lost_often_but_never_fatal_in_quarantine_runs(
    redis_client: Redis,
) -> None:
    survivor = task(prompt="again")
    await _held_and_lost(redis_client, survivor, 3)  # its next take has 1 crash

    async with running(redis_client, SETTINGS):
        (done,) = finals(await wait_finals(redis_client, 1))

    assert (done.kind, done.results) == ("succeeded", ["again"])
    assert await redis_client.xlen(DEAD_LETTERS_STREAM) == 0
    assert await redis_client.zcard(leases_key(FAIR_QUEUE)) == 0
