"""Fair scheduling (``RELAI_WORKER_SCHEDULING=fair``) with two real worker processes: a burst
from one user no longer holds back another's jobs, as it does in arrival order (``fifo``); a
killed worker's jobs run elsewhere once its leases expire, and nothing is left held."""

import asyncio
import signal
import time
import uuid
from typing import Any

import pytest
from redis.asyncio import Redis

from libs.contracts import LIMITS_LIVE_KEY, ResultMessage, TaskMessage
from libs.contracts.limits import (
    FAIR_QUEUE,
    held_key,
    leases_key,
    running_key,
    running_prefix,
    users_key,
)
from libs.loops import cancel_and_wait
from tests.integration.worker import _counting_worker
from tests.integration.worker.helpers import (
    add_tasks,
    finals,
    read_results,
    task,
    wait_finals,
)
from tests.integration.worker.processes import consumers_reading, worker_process
from tests.support import ServerUrls

HOLD: dict[str, Any] = {"delay_ms": 100}


def _of(user: uuid.UUID, prompt: str, **params: Any) -> TaskMessage:
    return task("count.hold", prompt, **{**HOLD, **params}).model_copy(update={"user_id": user})


async def _order_with(servers: ServerUrls, redis: Redis, scheduling: str) -> list[str]:
    """Alice queues 40 jobs, then bob 4; two processes of two slots each run them: the users'
    names in the order their jobs ended."""
    alice, bob = uuid.uuid4(), uuid.uuid4()
    burst = [_of(alice, f"a{i}") for i in range(40)]
    later = [_of(bob, f"b{i}") for i in range(4)]
    owner = {t.request_id: "alice" for t in burst} | {t.request_id: "bob" for t in later}
    settings = {"RELAI_WORKER_CONCURRENCY": "2", "RELAI_WORKER_SCHEDULING": scheduling}
    async with (
        worker_process(servers, "f1", **settings),
        worker_process(servers, "f2", **settings),
    ):
        await consumers_reading(redis, {"f1", "f2"})
        await add_tasks(redis, burst)
        await add_tasks(redis, later)
        results = await wait_finals(redis, len(burst) + len(later), timeout=60)
    ended = finals(results)
    assert {r.kind for r in ended} == {"succeeded"}
    assert {r.worker for r in ended} == {"f1", "f2"}
    assert int(await redis.get(_counting_worker.PEAK) or 0) <= 4  # two slots per process
    return [owner[r.request_id] for r in ended]


async def test_fair_scheduling_serves_a_second_user_in_turn_with_a_burst(
    servers: ServerUrls, redis_client: Redis
) -> None:
    order = await _order_with(servers, redis_client, "fair")
    bob_last = max(i for i, name in enumerate(order) if name == "bob")
    # In turns: bob's four end among the first twenty (a dozen when nothing else runs on the
    # machine), not after alice's forty as in arrival order.
    assert bob_last < 20, order
    assert await redis_client.zcard(leases_key(FAIR_QUEUE)) == 0
    assert await redis_client.hlen(held_key(FAIR_QUEUE)) == 0
    assert await redis_client.llen(users_key(FAIR_QUEUE)) == 0
    assert await redis_client.scard(LIMITS_LIVE_KEY) == 0


async def test_in_arrival_order_the_second_user_waits_for_the_whole_burst(
    servers: ServerUrls, redis_client: Redis
) -> None:
    order = await _order_with(servers, redis_client, "fifo")
    bob_first = min(i for i, name in enumerate(order) if name == "bob")
    assert bob_first >= 36, order  # behind (nearly) all of alice's forty


@pytest.mark.parametrize("victim", ["f1"])
async def test_a_killed_fair_worker_leaves_no_job_behind_and_nothing_held(
    servers: ServerUrls, redis_client: Redis, victim: str
) -> None:
    users = [uuid.uuid4() for _ in range(3)]
    jobs = [_of(users[i % 3], f"j{i}", delay_ms=1500) for i in range(12)]
    settings = {"RELAI_WORKER_CONCURRENCY": "3", "RELAI_WORKER_SCHEDULING": "fair"}
    async with (
        worker_process(servers, "f1", **settings) as first,
        worker_process(servers, "f2", **settings),
    ):
        await consumers_reading(redis_client, {"f1", "f2"})
        await add_tasks(redis_client, jobs)
        deadline = time.monotonic() + 10
        while await redis_client.zcard(leases_key(FAIR_QUEUE)) < 6:  # both processes busy
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        assert victim == "f1"
        first.send_signal(signal.SIGKILL)
        await first.wait()
        # Its three leases expire after the visibility timeout (5 s); f2 runs those jobs too.
        results = await wait_finals(redis_client, len(jobs), timeout=45)
    ended = finals(results)
    assert {r.request_id for r in ended} == {t.request_id for t in jobs}
    assert {r.kind for r in ended} == {"succeeded"}
    assert await redis_client.zcard(leases_key(FAIR_QUEUE)) == 0
    assert await redis_client.hlen(held_key(FAIR_QUEUE)) == 0
    assert await redis_client.scard(LIMITS_LIVE_KEY) == 0


def _ended(results: list[ResultMessage]) -> set[uuid.UUID]:
    return {r.request_id for r in finals(results)}


async def _peak_of(redis: Redis, key: str) -> int:
    return int(await redis.get(key) or 0)


async def _sample_live(redis: Redis, running: str, counts: list[int]) -> None:
    """Append how many live leases ``running`` holds, every 10 ms until cancelled."""
    while True:
        seconds, micros = await redis.time()
        counts.append(await redis.zcount(running, seconds * 1000 + micros // 1000, "+inf"))
        await asyncio.sleep(0.01)


async def test_the_cap_per_user_holds_across_two_processes_and_past_a_kill(
    servers: ServerUrls, redis_client: Redis
) -> None:
    """Alice may run two jobs at once: with eight slots between two processes, her twelve run
    two by two while bob's run beside them; a killed worker's leases still count until they
    expire, so the cap is never passed, and its jobs then run elsewhere."""
    alice, bob = uuid.uuid4(), uuid.uuid4()
    hers = [_of(alice, f"a{i}", delay_ms=400, counter="alice") for i in range(12)]
    his = [_of(bob, f"b{i}", delay_ms=400) for i in range(3)]
    settings = {
        "RELAI_WORKER_CONCURRENCY": "4",
        "RELAI_WORKER_SCHEDULING": "fair",
        "RELAI_WORKER_MAX_RUNNING_PER_USER": "2",
    }
    async with (
        worker_process(servers, "f1", **settings) as first,
        worker_process(servers, "f2", **settings),
    ):
        await consumers_reading(redis_client, {"f1", "f2"})
        await add_tasks(redis_client, hers + his)
        deadline = time.monotonic() + 30
        while not {t.request_id for t in his} <= (
            ended := _ended(await read_results(redis_client))
        ):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        # Bob's ran beside alice's, not after them: two of hers at a time could not all end.
        assert len(ended & {t.request_id for t in hers}) <= 8
        deadline = time.monotonic() + 10
        while True:  # f1 holds one of alice's leases
            held = await redis_client.hvals(held_key(FAIR_QUEUE))
            if any(str(alice).encode() in value for value in held):
                break
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        # Measured by the handler itself until the kill (a killed call never counts itself out).
        assert await _peak_of(redis_client, _counting_worker.peak_key("alice")) == 2
        first.send_signal(signal.SIGKILL)
        await first.wait()
        # From then on, by her live leases, the dead worker's among them while they last.
        live: list[int] = []
        running = running_key(FAIR_QUEUE, str(alice))
        sampling = asyncio.create_task(_sample_live(redis_client, running, live))
        try:
            results = await wait_finals(redis_client, len(hers) + len(his), timeout=60)
        finally:
            await cancel_and_wait([sampling])
    assert _ended(results) == {t.request_id for t in hers + his}
    assert len(live) > 100
    assert max(live) == 2
    assert await redis_client.zcard(leases_key(FAIR_QUEUE)) == 0
    assert await redis_client.scard(LIMITS_LIVE_KEY) == 0
    assert not await redis_client.keys(f"{running_prefix(FAIR_QUEUE)}*")
