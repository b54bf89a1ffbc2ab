"""Shared limits per integration: a concurrency cap held across processes, a credit budget per
window that defers jobs (never fails them), other integrations that keep flowing, fairness
between users, and leases of dead workers that expire."""

import asyncio
import time
import uuid
from typing import Any

import pytest
from redis.asyncio import Redis

from libs.contracts import LIMITS_LIVE_KEY, TASKS_STREAM, TaskMessage
from libs.contracts.limits import leases_key, users_key
from services.worker._limits import Limiter, limits_of
from services.worker.job import HandlerError
from services.worker.settings import WorkerSettings
from tests.integration.worker import _counting_worker
from tests.integration.worker.helpers import (
    FAST,
    add_tasks,
    finals,
    read_results,
    running,
    task,
    wait_finals,
)
from tests.integration.worker.processes import consumers_reading, worker_process
from tests.support import ServerUrls


def _for(user: uuid.UUID, message: TaskMessage) -> TaskMessage:
    return message.model_copy(update={"user_id": user})


async def test_the_concurrency_cap_holds_across_two_worker_processes(
    servers: ServerUrls, redis_client: Redis
) -> None:
    tasks = [
        _for(
            uuid.uuid4(),
            task("count.hold", f"job {i}", integration="capped", max_concurrency=3, delay_ms=300),
        )
        for i in range(15)
    ]
    # Two slots each: a peak of three calls at once needs both processes.
    two_slots = {"RELAI_WORKER_CONCURRENCY": "2"}
    async with (
        worker_process(servers, "p1", **two_slots),
        worker_process(servers, "p2", **two_slots),
    ):
        await consumers_reading(redis_client, {"p1", "p2"})
        await add_tasks(redis_client, tasks)
        results = await wait_finals(redis_client, len(tasks), timeout=60)
    ended = finals(results)
    assert {r.kind for r in ended} == {"succeeded"}
    assert {r.worker for r in ended} == {"p1", "p2"}
    assert int(await redis_client.get(_counting_worker.PEAK) or 0) == 3
    assert await redis_client.zcard(leases_key("capped")) == 0
    assert await redis_client.scard(LIMITS_LIVE_KEY) == 0


async def test_an_exhausted_budget_defers_jobs_to_the_next_window(
    servers: ServerUrls, redis_client: Redis
) -> None:
    window_s = 3.0
    # Start just after a window begins, so that the first two jobs share one window.
    await asyncio.sleep(window_s - time.time() % window_s + 0.05)
    window_end = (time.time() // window_s + 1) * window_s
    params: dict[str, Any] = {
        "integration": "budgeted",
        "budget": 4,
        "window_s": window_s,
        "cost": 2,
    }
    tasks = [task(prompt=f"b{i}", **params) for i in range(3)]
    async with running(redis_client):
        await add_tasks(redis_client, tasks)
        first = await wait_finals(redis_client, 2, timeout=window_s - 0.5)
        assert {r.request_id for r in finals(first)} == {t.request_id for t in tasks[:2]}
        await asyncio.sleep(min(0.3, window_end - time.time() - 0.1))
        assert len(finals(await read_results(redis_client))) == 2  # the third waits, not failed
        assert await redis_client.llen(users_key("budgeted")) == 1
        every = await wait_finals(redis_client, 3, timeout=window_s + 5)
        assert time.time() >= window_end - 0.05
    assert [r.kind for r in finals(every)] == ["succeeded"] * 3


async def test_other_integrations_keep_flowing_past_a_full_one(
    servers: ServerUrls, redis_client: Redis
) -> None:
    slow = [
        task("echo.delay", f"s{i}", integration="slow", max_concurrency=1, delay_ms=1500)
        for i in range(4)
    ]
    fast = [task(prompt=f"f{i}", integration="fast", max_concurrency=2) for i in range(5)]
    free = [task(prompt=f"n{i}") for i in range(5)]
    settings = WorkerSettings(**{**FAST.model_dump(), "worker_concurrency": 3})
    async with running(redis_client, settings):
        await add_tasks(redis_client, slow + fast + free)
        results = await wait_finals(redis_client, len(fast) + len(free) + 1, timeout=10)
    done = {r.request_id for r in finals(results)}
    assert {t.request_id for t in fast + free} <= done
    assert len(done & {t.request_id for t in slow}) <= 1
    assert {r.kind for r in finals(results)} == {"succeeded"}


async def test_a_burst_from_one_user_does_not_starve_another(
    servers: ServerUrls, redis_client: Redis
) -> None:
    alice, bob = uuid.uuid4(), uuid.uuid4()
    params: dict[str, Any] = {"integration": "shared", "max_concurrency": 1, "delay_ms": 50}
    burst = [_for(alice, task("echo.delay", f"a{i}", **params)) for i in range(8)]
    later = [_for(bob, task("echo.delay", f"b{i}", **params)) for i in range(2)]
    await add_tasks(redis_client, burst + later)
    async with running(redis_client):
        results = await wait_finals(redis_client, 10, timeout=15)
    order = [r.request_id for r in finals(results)]
    bob_positions = [order.index(t.request_id) for t in later]
    assert max(bob_positions) <= 4, order  # taken in turns, not after alice's whole burst


async def test_a_dead_workers_lease_expires_and_its_job_runs_elsewhere(
    servers: ServerUrls, redis_client: Redis
) -> None:
    params: dict[str, Any] = {"integration": "solo", "max_concurrency": 1}
    held, queued = task(prompt="held", **params), task(prompt="queued", **params)
    await add_tasks(redis_client, [held, queued])
    # A worker parks both, takes the first under a short lease, and dies without renewing it.
    dead = Limiter(redis_client, lease_ttl_s=1.0, on_parked=lambda _: None)
    limits = limits_of(held.params)
    assert limits is not None
    entry_ids = [entry_id for entry_id, _ in await redis_client.xrange(TASKS_STREAM) or []]
    for entry_id, message in zip(entry_ids, [held, queued], strict=True):
        assert isinstance(entry_id, bytes)
        await dead.park(entry_id, message, message.model_dump_json().encode(), limits)
    taken = await dead.take("solo", 5)
    assert isinstance(taken, list)
    assert [t.lease.request_id for t in taken] == [held.request_id]  # max_concurrency 1
    assert await dead.take("solo") == 0  # at capacity while the lease lives
    async with running(redis_client):
        results = await wait_finals(redis_client, 2, timeout=10)
    assert {r.request_id: r.kind for r in finals(results)} == {
        held.request_id: "succeeded",
        queued.request_id: "succeeded",
    }


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"integration": "a b"}, "integration must be a name"),
        ({"integration": "x", "max_concurrency": 0}, "max_concurrency must be >= 1"),
        ({"integration": "x", "budget": -1}, "budget must be a whole number"),
        ({"integration": "x", "window_s": 0}, "window_s must be a number > 0"),
        ({"integration": "x", "cost": 1.5}, "cost must be a whole number"),
    ],
)
def test_invalid_limits_are_named(params: dict[str, Any], error: str) -> None:
    with pytest.raises(HandlerError, match=error):
        limits_of(params)


async def test_a_task_with_invalid_limits_fails_at_once(
    servers: ServerUrls, redis_client: Redis
) -> None:
    bad = task(integration="x", max_concurrency=0)
    async with running(redis_client):
        await add_tasks(redis_client, [bad])
        (result,) = finals(await wait_finals(redis_client, 1))
    assert (result.kind, result.error) == ("failed", "invalid params: max_concurrency must be >= 1")
