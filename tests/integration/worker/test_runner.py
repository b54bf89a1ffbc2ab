"""The runner against real Redis: results, acks, failures, concurrency and bad entries."""

import asyncio
import json
import time
from typing import Any

from redis.asyncio import Redis

from libs.contracts import TASKS_GROUP, TASKS_STREAM
from libs.streams import ensure_group
from services.worker.handlers import build_registry
from services.worker.job import Job, JobContext
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
)


async def test_tasks_get_started_and_succeeded_results_and_are_acked(redis_client: Redis) -> None:
    tasks = [
        task(prompt="one"),
        task(prompt="two", create_qty=3, attempt=2, traceparent="00-abc-def-01"),
        task("echo.delay", prompt="three", delay_ms=10),
    ]
    async with running(redis_client, consumer="w-main"):
        await add_tasks(redis_client, tasks)
        results = await wait_finals(redis_client, 3)
        await wait_pending(redis_client, 0)

    by_request = {t.request_id: [r for r in results if r.request_id == t.request_id] for t in tasks}
    for sent in tasks:
        started, succeeded = by_request[sent.request_id]
        assert (started.kind, succeeded.kind) == ("started", "succeeded")
        assert succeeded.results == [sent.prompt] * sent.create_qty
        for result in (started, succeeded):
            assert result.worker == "w-main"
            assert result.attempt == sent.attempt
            assert result.traceparent == sent.traceparent
    assert len(results) == 6


async def test_failures_are_reported_and_acked(redis_client: Redis) -> None:
    flaky = task("echo.delay", failure_rate=1.0)
    unknown = task("x.y")
    bad_params = task("echo.delay", delay_ms="soon")
    async with running(redis_client):
        await add_tasks(redis_client, [flaky, unknown, bad_params])
        results = await wait_finals(redis_client, 3)
        await wait_pending(redis_client, 0)

    errors = {r.request_id: r.error for r in finals(results)}
    assert errors == {
        flaky.request_id: "simulated failure",
        unknown.request_id: "unknown handler 'x.y'",
        bad_params.request_id: "invalid params: delay_ms must be a number",
    }
    assert all(r.kind == "failed" and r.results is None for r in finals(results))
    assert not [r for r in results if r.request_id == unknown.request_id and r.kind == "started"]


async def test_a_handler_past_the_job_timeout_fails(redis_client: Redis) -> None:
    slow = task("echo.delay", delay_ms=2000)
    async with running(redis_client, FAST.model_copy(update={"worker_job_timeout_s": 0.2})):
        await add_tasks(redis_client, [slow])
        results = await wait_finals(redis_client, 1)
    assert finals(results)[0].error == "TimeoutError: job exceeded 0.2s"
    assert await pending(redis_client) == 0


async def test_an_offers_job_timeout_applies_up_to_the_workers_own(redis_client: Redis) -> None:
    short = task("echo.delay", delay_ms=2000, job_timeout_s=0.2)
    capped = task("echo.delay", delay_ms=2000, job_timeout_s=60)
    invalid = task("echo.delay", delay_ms=10, job_timeout_s="soon")
    async with running(redis_client, FAST.model_copy(update={"worker_job_timeout_s": 0.5})):
        await add_tasks(redis_client, [short, capped, invalid])
        results = await wait_finals(redis_client, 3)
    assert {r.request_id: r.error for r in finals(results)} == {
        short.request_id: "TimeoutError: job exceeded 0.2s",
        capped.request_id: "TimeoutError: job exceeded 0.5s",
        invalid.request_id: "invalid params: job_timeout_s must be a number > 0",
    }


async def test_never_more_jobs_in_flight_than_the_concurrency(redis_client: Redis) -> None:
    settings = FAST.model_copy(update={"worker_concurrency": 10, "worker_batch": 100})
    seen: list[int] = []
    async with running(redis_client, settings) as runner:
        started = time.monotonic()
        await add_tasks(redis_client, [task("echo.delay", delay_ms=200) for _ in range(50)])
        while len(finals(await read_results(redis_client))) < 50:
            seen.append(runner.in_flight)
            assert time.monotonic() - started < 10
            await asyncio.sleep(0.01)
        elapsed = time.monotonic() - started
        await wait_pending(redis_client, 0)

    assert elapsed >= 1.0
    assert max(seen) == 10
    # Replaying the stream: a job is in flight from its started result to its final one.
    in_flight = peak = 0
    for result in await read_results(redis_client):
        in_flight += 1 if result.kind == "started" else -1
        peak = max(peak, in_flight)
    assert peak == 10
    assert in_flight == 0


async def test_malformed_entries_are_acked_and_the_loop_goes_on(redis_client: Redis) -> None:
    known = task()
    half = known.model_dump(mode="json", exclude={"handler", "prompt"})
    async with running(redis_client) as runner:
        await redis_client.xadd(TASKS_STREAM, {b"m": b"not json"})
        await redis_client.xadd(TASKS_STREAM, {b"other": b"field"})
        await redis_client.xadd(TASKS_STREAM, {b"m": json.dumps(half).encode()})
        good = task(prompt="after")
        await add_tasks(redis_client, [good])
        results = await wait_finals(redis_client, 2)
        await wait_pending(redis_client, 0)
        assert runner.in_flight == 0

    by_request = {r.request_id: r for r in finals(results)}
    assert by_request[good.request_id].results == ["after"]
    failed = by_request[known.request_id]
    assert failed.kind == "failed"
    assert failed.error is not None
    assert failed.error.startswith("malformed task: ")
    assert "handler" in failed.error
    assert len(results) == 3


async def test_an_entry_deleted_while_pending_is_acked(redis_client: Redis) -> None:
    await ensure_group(redis_client, TASKS_STREAM, TASKS_GROUP)
    (entry_id,) = await add_tasks(redis_client, [task()])
    await redis_client.xreadgroup(TASKS_GROUP, "dead", {TASKS_STREAM: ">"}, count=1)
    await redis_client.xdel(TASKS_STREAM, entry_id)
    settings = FAST.model_copy(update={"worker_visibility_timeout_s": 0.2})
    async with running(redis_client, settings):
        await wait_pending(redis_client, 0)
    assert await read_results(redis_client) == []


async def test_usage_travels_with_the_result_and_only_counts_do(redis_client: Redis) -> None:
    class Counting:
        async def execute(self, job: Job, ctx: JobContext) -> list[Any]:
            ctx.add_usage(input_tokens=3, output_tokens=5)
            ctx.usage["odd"] = "many"  # type: ignore[assignment]
            return [job.prompt]

    registry = build_registry()
    registry.register("count.tokens", Counting())
    async with running(redis_client, registry=registry):
        await add_tasks(redis_client, [task("count.tokens", prompt="x")])
        (done,) = finals(await wait_finals(redis_client, 1))
    assert (done.kind, done.results) == ("succeeded", ["x"])
    assert done.usage == {"input_tokens": 3, "output_tokens": 5}
