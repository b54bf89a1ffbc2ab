"""``python -m tests.integration.worker._counting_worker``: a real worker process whose registry
also has ``count.hold``, a handler that counts in Redis how many of its calls run at once across
every process, so that a test can check a shared cap from outside the limiter. With
``RELAI_CONFIG_FILE`` it follows the central config as ``relai-worker`` does."""

import asyncio
import os
import signal
from typing import Any

from redis.asyncio import Redis

from libs.config import ConfigWatcher, watching
from libs.logs import configure_logging
from libs.streams import create_redis
from services.worker.config import deployment_params, handler_params
from services.worker.handlers import build_registry
from services.worker.job import Job, JobContext
from services.worker.runner import Runner
from services.worker.settings import WorkerSettings, get_settings

READY = "test:count:ready"
"""A set of the names of the workers reading."""
NOW = "test:count:now"
PEAK = "test:count:peak"


def peak_key(counter: str) -> str:
    """The peak of the calls whose params name ``counter`` (besides the global one)."""
    return f"{PEAK}:{counter}"


_ENTER = """
local n = redis.call('INCR', KEYS[1])
if n > tonumber(redis.call('GET', KEYS[2]) or '0') then redis.call('SET', KEYS[2], n) end
return n
"""


class CountHold:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._enter = redis.register_script(_ENTER)

    async def execute(self, job: Job, ctx: JobContext) -> list[Any]:
        counter = job.params.get("counter")
        counted = [(NOW, PEAK)]
        if counter:
            counted.append((f"{NOW}:{counter}", peak_key(counter)))
        for now, peak in counted:
            await self._enter(keys=[now, peak])
        try:
            await asyncio.sleep(float(job.params.get("delay_ms", 100)) / 1000)
        finally:
            for now, _ in counted:
                await self._redis.decr(now)
        return [job.prompt]


async def main() -> None:
    settings = get_settings()
    configure_logging(service="worker", level="WARNING", json=True)
    async with watching(settings, os.environ) as config:
        await _run(settings, config)


async def _run(settings: WorkerSettings, config: ConfigWatcher | None) -> None:
    """With ``RELAI_CONFIG_FILE``, following the central config ``worker`` as the worker does."""
    redis = create_redis(settings.redis_url)
    registry = build_registry()
    registry.register("count.hold", CountHold(redis))
    runner = Runner(
        redis,
        registry,
        settings,
        handler_params=handler_params(config) if config is not None else None,
        deployment_params=deployment_params(config) if config is not None else None,
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, runner.stop)
    run = asyncio.create_task(runner.run())
    try:
        await runner.wait_ready()
        await redis.sadd(READY, runner.consumer)
        await run
    finally:
        await redis.aclose()


if __name__ == "__main__":
    asyncio.run(main())
