"""The worker's job metrics, after jobs run in this process (the metrics are process-wide, so
the checks compare before and after)."""

from prometheus_client import REGISTRY
from redis.asyncio import Redis

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
