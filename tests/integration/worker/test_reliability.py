"""What keeps jobs from being lost: reclaim, heartbeat, drain, and surviving Redis trouble."""

import asyncio
import time

from redis.asyncio import Redis

from libs.contracts import TASKS_GROUP, TASKS_STREAM
from libs.streams import create_redis, ensure_group
from services.worker.handlers import build_registry
from services.worker.runner import Runner
from tests.integration.worker.helpers import (
    FAST,
    add_tasks,
    finals,
    pending,
    read_results,
    running,
    task,
    wait_finals,
    wait_pending,
    wait_results,
)


async def test_an_entry_left_by_a_dead_consumer_is_reclaimed(redis_client: Redis) -> None:
    await ensure_group(redis_client, TASKS_STREAM, TASKS_GROUP)
    orphan = task(prompt="orphan")
    await add_tasks(redis_client, [orphan])
    await redis_client.xreadgroup(TASKS_GROUP, "dead", {TASKS_STREAM: ">"}, count=1)
    settings = FAST.model_copy(update={"worker_visibility_timeout_s": 0.5})

    started = time.monotonic()
    async with running(redis_client, settings, consumer="alive"):
        results = await wait_finals(redis_client, 1)
        reclaimed_after = time.monotonic() - started
        await wait_pending(redis_client, 0)

    assert reclaimed_after >= 0.4
    (done,) = finals(results)
    assert (done.request_id, done.kind, done.worker) == (orphan.request_id, "succeeded", "alive")
    assert done.results == ["orphan"]


async def test_heartbeat_keeps_a_long_job_from_being_reclaimed(redis_client: Redis) -> None:
    settings = FAST.model_copy(update={"worker_visibility_timeout_s": 0.45})
    # Its own reclaim passes would touch its entries too; only the heartbeat must do that here.
    owner = settings.model_copy(update={"worker_reclaim_interval_s": 60.0})
    long = task("echo.delay", prompt="long", delay_ms=1500)
    async with running(redis_client, owner, consumer="a"):
        await add_tasks(redis_client, [long])
        await wait_results(redis_client, lambda rs: len(rs) == 1)
        async with running(redis_client, settings, consumer="b") as rival:
            results = await wait_finals(redis_client, 1)
            assert rival.in_flight == 0
        await wait_pending(redis_client, 0)

    assert [(r.kind, r.worker) for r in results] == [("started", "a"), ("succeeded", "a")]


async def test_stop_drains_in_flight_jobs_and_acks_them(redis_client: Redis) -> None:
    runner = Runner(redis_client, build_registry(), FAST, consumer="w1")
    run = asyncio.create_task(runner.run())
    await runner.wait_ready()
    await add_tasks(redis_client, [task("echo.delay", delay_ms=400) for _ in range(5)])
    await wait_results(redis_client, lambda rs: len(rs) == 5)
    assert runner.in_flight == 5

    runner.stop()
    await asyncio.wait_for(run, 5)

    results = await read_results(redis_client)
    assert [r.kind for r in finals(results)] == ["succeeded"] * 5
    assert await pending(redis_client) == 0


async def test_stop_while_idle_returns_promptly(redis_client: Redis) -> None:
    async with running(redis_client) as runner:
        started = time.monotonic()
        runner.stop()
    assert time.monotonic() - started < 1.0


async def test_jobs_past_the_drain_timeout_go_to_another_worker(redis_client: Redis) -> None:
    slow = task("echo.delay", prompt="slow", delay_ms=800)
    settings = FAST.model_copy(update={"worker_visibility_timeout_s": 3.0})
    impatient = settings.model_copy(update={"worker_drain_timeout_s": 0.1})
    async with running(redis_client, impatient, consumer="leaving"):
        await add_tasks(redis_client, [slow])
        await wait_results(redis_client, lambda rs: len(rs) == 1)
    assert await pending(redis_client) == 1

    # Well inside the visibility timeout: only the release on shutdown lets it be reclaimed now.
    started = time.monotonic()
    async with running(redis_client, settings, consumer="staying"):
        results = await wait_finals(redis_client, 1, timeout=3)
        assert time.monotonic() - started < 1.5
        await wait_pending(redis_client, 0)

    assert [(r.kind, r.worker) for r in results] == [
        ("started", "leaving"),
        ("started", "staying"),
        ("succeeded", "staying"),
    ]


async def test_a_lost_group_is_recreated(redis_client: Redis) -> None:
    async with running(redis_client):
        await add_tasks(redis_client, [task()])
        await wait_finals(redis_client, 1)
        # What a Redis restart without persistence looks like from here.
        await redis_client.flushdb()
        await asyncio.sleep(0.3)
        again = task(prompt="again")
        await add_tasks(redis_client, [again])
        results = await wait_finals(redis_client, 1)
        await wait_pending(redis_client, 0)
    assert [r.results for r in finals(results)] == [["again"]]


async def test_an_unreachable_redis_does_not_kill_the_runner() -> None:
    redis = create_redis("redis://127.0.0.1:1/0")
    try:
        runner = Runner(redis, build_registry(), FAST, consumer="w1")
        run = asyncio.create_task(runner.run())
        await asyncio.sleep(0.5)
        assert not run.done()
        runner.stop()
        await asyncio.wait_for(run, 5)
    finally:
        await redis.aclose()
