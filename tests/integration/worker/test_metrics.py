"""The worker's job metrics, after jobs run in this process (the metrics are process-wide, so
the checks compare before and after)."""

import time
from typing import Any

from prometheus_client import REGISTRY
from redis.asyncio import Redis

from libs.contracts import TASKS_STREAM
from libs.streams import encode
from services.worker.job import Job, JobContext
from services.worker.registry import HandlerRegistry
from tests.integration.worker.helpers import add_tasks, running, task, wait_finals


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_jobs_are_counted_and_timed_by_handler_and_outcome(redis_client: Redis) -> None:
    before = {
        "ok": _value("relai_jobs_total", handler="echo.text", outcome="succeeded"),
        "failed": _value("relai_jobs_total", handler="unknown", outcome="failed"),
        "timed": _value("relai_job_duration_seconds_count", handler="echo.text"),
    }
    async with running(redis_client):
        await add_tasks(redis_client, [task(prompt="a"), task(prompt="b"), task("x.y")])
        await wait_finals(redis_client, 3)
    assert _value("relai_jobs_total", handler="echo.text", outcome="succeeded") == before["ok"] + 2
    assert _value("relai_jobs_total", handler="unknown", outcome="failed") == before["failed"] + 1
    assert _value("relai_job_duration_seconds_count", handler="echo.text") == before["timed"] + 2
    assert _value("relai_jobs_in_flight") == 0


class _Metered:
    """A handler that reports provider usage, as provider handlers do."""

    async def execute(self, job: Job, ctx: JobContext) -> list[Any]:
        ctx.add_usage(input_tokens=len(job.prompt), output_tokens=3)
        ctx.add_usage(output_tokens=1)
        return [job.prompt]


async def test_tokens_by_handler_and_model_and_retries_by_handler(redis_client: Redis) -> None:
    registry = HandlerRegistry()
    registry.register("metered.chat", _Metered())
    tokens = {"handler": "metered.chat", "model": "m-1"}
    before = {
        "in": _value("relai_provider_tokens_total", **tokens, kind="input_tokens"),
        "out": _value("relai_provider_tokens_total", **tokens, kind="output_tokens"),
        "retries": _value("relai_job_retries_total", handler="metered.chat"),
    }
    async with running(redis_client, registry=registry):
        await add_tasks(
            redis_client,
            [
                task("metered.chat", prompt="hello", model="m-1"),
                task("metered.chat", prompt="hi", model="m-1", attempt=2),
            ],
        )
        await wait_finals(redis_client, 2)
    name = "relai_provider_tokens_total"
    assert _value(name, **tokens, kind="input_tokens") == before["in"] + 7
    assert _value(name, **tokens, kind="output_tokens") == before["out"] + 8
    assert _value("relai_job_retries_total", handler="metered.chat") == before["retries"] + 1


async def test_a_tasks_wait_and_its_results_write_are_timed_as_hops(redis_client: Redis) -> None:
    """``pickup`` reads a task's wait from its entry id (the time Redis added it): a task
    published 3 s ago waited 3 s. ``write`` times each final result in the writer's buffer."""
    before = {
        "pickups": _value("relai_hop_seconds_count", hop="pickup"),
        "waited": _value("relai_hop_seconds_sum", hop="pickup"),
        "writes": _value("relai_hop_seconds_count", hop="write"),
    }
    async with running(redis_client):
        published = int(time.time() * 1000) - 3000
        await redis_client.xadd(TASKS_STREAM, encode(task(prompt="late")), id=f"{published}-0")
        await add_tasks(redis_client, [task(prompt="now")])
        await wait_finals(redis_client, 2)

    assert _value("relai_hop_seconds_count", hop="pickup") == before["pickups"] + 2
    waited = _value("relai_hop_seconds_sum", hop="pickup") - before["waited"]
    assert 3.0 <= waited < 3.0 + 5.0
    assert _value("relai_hop_seconds_count", hop="write") == before["writes"] + 2
