"""Priority tiers under fair scheduling, with real worker processes: each tier waits in a queue of
its own and the worker takes them by weight (``_stride``), so that ``priority`` jobs submitted
behind a backlog of ``flex`` ones start as the next slots free, and ``flex`` jobs keep ending
under a steady ``priority`` load. Every result says the tier its job was served at: the one it
asked for under ``fair``, ``default`` in arrival order or under an integration's limits."""

import asyncio
import statistics
import time
import uuid
from typing import Any

from redis.asyncio import Redis

from libs.contracts import RESULTS_STREAM, TASKS_STREAM, ResultMessage, TaskMessage
from libs.contracts.limits import leases_key, tier_queue
from libs.contracts.tiers import TIERS, Tier
from libs.loops import cancel_and_wait
from tests.integration.worker.helpers import (
    FAST,
    add_tasks,
    finals,
    read_results,
    running,
    wait_finals,
    wait_results,
)
from tests.integration.worker.processes import consumers_reading, worker_process
from tests.support import ServerUrls

JOB_MS = 50
SLOTS = 4
"""Per process; two processes."""
FAIR = {"RELAI_WORKER_CONCURRENCY": str(SLOTS), "RELAI_WORKER_SCHEDULING": "fair"}


def _job(user: uuid.UUID, tier: Tier, prompt: str, **params: Any) -> TaskMessage:
    return TaskMessage(
        request_id=uuid.uuid4(),
        attempt=1,
        handler="echo.delay",
        prompt=prompt,
        params={"delay_ms": JOB_MS, **params},
        user_id=user,
        tier=tier,
    )


async def _results(redis: Redis) -> list[tuple[int, ResultMessage]]:
    """The results stream's messages, each with the millisecond of its entry (Redis's clock)."""
    entries: list[Any] = await redis.xrange(RESULTS_STREAM) or []
    return [
        (int(entry_id.split(b"-")[0]), ResultMessage.model_validate_json(fields[b"m"]))
        for entry_id, fields in entries
    ]


async def _added_ms(redis: Redis, tasks: list[TaskMessage]) -> int:
    """Add ``tasks`` to the stream; the millisecond they were added at (Redis's clock)."""
    ids = await add_tasks(redis, tasks)
    return min(int(i.split(b"-")[0]) for i in ids)


async def _parked(redis: Redis, timeout: float = 20) -> None:
    """Wait until the workers parked everything the tasks stream held."""
    deadline = time.monotonic() + timeout
    while await redis.xlen(TASKS_STREAM):
        assert time.monotonic() < deadline, "the workers never parked the backlog"
        await asyncio.sleep(0.02)


async def test_priority_jobs_start_before_a_flex_backlog_within_about_one_job(
    servers: ServerUrls, redis_client: Redis
) -> None:
    user = uuid.uuid4()
    backlog = [_job(user, "flex", f"f{i}") for i in range(200)]
    urgent = [_job(user, "priority", f"p{i}") for i in range(4)]
    async with (
        worker_process(servers, "t1", **FAIR),
        worker_process(servers, "t2", **FAIR),
    ):
        await consumers_reading(redis_client, {"t1", "t2"})
        await add_tasks(redis_client, backlog)
        await _parked(redis_client)
        submitted = await _added_ms(redis_client, urgent)
        await wait_finals(redis_client, len(backlog) + len(urgent), timeout=60)
    results = await _results(redis_client)
    ids = {t.request_id for t in urgent}
    started = {r.request_id: at for at, r in results if r.kind == "started" and r.request_id in ids}
    waits = sorted(at - submitted for at in started.values())
    assert len(waits) == len(urgent)
    # The backlog is 200 × 50 ms on 8 slots, 1.25 s; each priority job waits for a slot to free
    # (at most one job's duration), plus parking and the round trips of a busy machine.
    assert waits[-1] <= JOB_MS + 500, waits
    last_start = max(started.values())
    flex_ended_before = sum(
        1 for at, r in results if r.kind != "started" and r.tier == "flex" and at < last_start
    )
    assert flex_ended_before < 60, flex_ended_before  # not after nearly all 200
    served = {r.request_id: r.tier for _, r in results}
    assert {served[t.request_id] for t in urgent} == {"priority"}
    assert {served[t.request_id] for t in backlog} == {"flex"}


async def _sample_running(redis: Redis, counts: list[int]) -> None:
    """Append how many jobs of the tiers' queues hold a lease, every 10 ms until cancelled."""
    while True:
        pipe = redis.pipeline(transaction=False)
        for tier in TIERS:
            pipe.zcard(leases_key(tier_queue(tier)))
        counts.append(sum(await pipe.execute()))
        await asyncio.sleep(0.01)


async def test_flex_jobs_keep_ending_at_their_share_under_a_steady_priority_load(
    servers: ServerUrls, redis_client: Redis
) -> None:
    flex_user, priority_user = uuid.uuid4(), uuid.uuid4()
    flex = [_job(flex_user, "flex", f"f{i}") for i in range(100)]
    load = [_job(priority_user, "priority", f"p{i}") for i in range(425)]
    running: list[int] = []
    async with (
        worker_process(servers, "t1", **FAIR),
        worker_process(servers, "t2", **FAIR),
    ):
        await consumers_reading(redis_client, {"t1", "t2"})
        # Flex waits first; the priority load, more than the slots can run (425 × 50 ms on 8
        # slots: 2.7 s), comes at once behind it.
        await add_tasks(redis_client, flex)
        await add_tasks(redis_client, load)
        sampling = asyncio.create_task(_sample_running(redis_client, running))
        try:
            ids = {t.request_id for t in load}
            await wait_results(
                redis_client, lambda rs: ids <= {r.request_id for r in finals(rs)}, timeout=60
            )
        finally:
            await cancel_and_wait([sampling])
        results = await _results(redis_client)
    ends = [(at, r) for at, r in results if r.kind != "started"]
    last_priority = max(at for at, r in ends if r.tier == "priority")
    during = [(at, r) for at, r in ends if at <= last_priority]
    flex_during = [at for at, r in during if r.tier == "flex"]
    share = len(flex_during) / len(during)
    # Weights 16 and 1: flex gets about one slot in 17 (6 %), not none and not half.
    assert 0.5 / 17 <= share <= 2 / 17, (len(flex_during), len(during))
    # And all along, not in one lump: in each third of the load, some flex jobs ended.
    first = min(at for at, _ in during)
    third = (last_priority - first) / 3
    for k in range(3):
        assert any(first + k * third <= at <= first + (k + 1) * third for at in flex_during)
    # The slots stay busy: most of the time all eight hold a job.
    assert statistics.median(running) >= 2 * SLOTS - 1, running
    assert {r.tier for _, r in results if r.request_id in {t.request_id for t in flex}} == {"flex"}


async def _served(
    servers: ServerUrls, redis: Redis, scheduling: str, tasks: list[TaskMessage]
) -> dict[uuid.UUID, set[Tier | None]]:
    """Each task's served tier, as every result written about it said."""
    settings = {"RELAI_WORKER_CONCURRENCY": str(SLOTS), "RELAI_WORKER_SCHEDULING": scheduling}
    async with worker_process(servers, "t1", **settings):
        await consumers_reading(redis, {"t1"})
        await add_tasks(redis, tasks)
        results = await wait_finals(redis, len(tasks), timeout=30)
    assert {r.kind for r in finals(results)} == {"succeeded"}
    assert len(results) == 2 * len(tasks)  # started, then succeeded
    served: dict[uuid.UUID, set[Tier | None]] = {}
    for r in results:
        served.setdefault(r.request_id, set()).add(r.tier)
    return served


async def test_fair_scheduling_serves_the_tier_asked_for(
    servers: ServerUrls, redis_client: Redis
) -> None:
    user = uuid.uuid4()
    tasks = {tier: _job(user, tier, tier, delay_ms=0) for tier in TIERS}
    limited = _job(
        user, "priority", "limited", delay_ms=0, integration="metered", max_concurrency=2
    )
    served = await _served(servers, redis_client, "fair", [*tasks.values(), limited])
    assert {tier: served[t.request_id] for tier, t in tasks.items()} == {
        "flex": {"flex"},
        "default": {"default"},
        "priority": {"priority"},
    }
    # Tiers are not honoured in an integration's queue: served, and billed, at default.
    assert served[limited.request_id] == {"default"}


async def test_in_arrival_order_every_job_is_served_at_default(
    servers: ServerUrls, redis_client: Redis
) -> None:
    user = uuid.uuid4()
    tasks = [_job(user, tier, tier, delay_ms=0) for tier in TIERS]
    served = await _served(servers, redis_client, "fifo", tasks)
    assert list(served.values()) == [{"default"}] * len(TIERS)


async def test_an_integrations_jobs_are_not_starved_by_the_tiers_backlog(
    redis_client: Redis,
) -> None:
    """The tiers' queues take one turn together in a round, each integration one: with every
    slot wanted by a priority backlog, an integration's jobs still run in turn with it."""
    user = uuid.uuid4()
    backlog = [_job(user, "priority", f"p{i}") for i in range(120)]
    limits = {"integration": "metered", "max_concurrency": 8}
    metered = [_job(user, "default", f"m{i}", **limits) for i in range(8)]
    settings = FAST.model_copy(update={"worker_concurrency": 4, "worker_scheduling": "fair"})
    async with running(redis_client, settings):
        await add_tasks(redis_client, backlog)
        await _parked(redis_client)
        await add_tasks(redis_client, metered)
        await wait_finals(redis_client, len(backlog) + len(metered), timeout=30)
    order = [r.request_id for r in finals(await read_results(redis_client))]
    ids = {t.request_id for t in metered}
    last_metered = max(i for i, request_id in enumerate(order) if request_id in ids)
    # 120 × 50 ms on 4 slots is 1.5 s; in turns, the eight end within the first half of it.
    assert last_metered < 70, last_metered
