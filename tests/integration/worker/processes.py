"""Real worker processes for tests that need more than one: each runs
``tests.integration.worker._counting_worker`` (the real runner, plus ``count.hold``)."""

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from redis.asyncio import Redis

from tests.integration.worker import _counting_worker
from tests.support import ServerUrls

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(__file__))))


@asynccontextmanager
async def worker_process(
    servers: ServerUrls, name: str, **settings: str
) -> AsyncIterator[asyncio.subprocess.Process]:
    """A worker process named ``name`` (stopped with SIGTERM on exit unless it is dead already);
    ``settings`` are ``RELAI_*`` variables, e.g. ``RELAI_WORKER_CONCURRENCY="2"``."""
    env = {
        **os.environ,
        "DATABASE_URL": servers.database_url,
        "REDIS_URL": servers.redis_url,
        "RELAI_WORKER_NAME": name,
        "RELAI_WORKER_METRICS_PORT": "0",
        "RELAI_WORKER_BLOCK_MS": "200",
        "RELAI_WORKER_VISIBILITY_TIMEOUT_S": "5",
        **settings,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", _counting_worker.__name__, env=env, cwd=ROOT
    )
    try:
        yield process
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 15)
            except TimeoutError:
                process.kill()
                await process.wait()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def consumers_reading(redis: Redis, names: set[str], timeout: float = 30) -> None:
    """Wait until every worker named in ``names`` reads its stream."""
    deadline = time.monotonic() + timeout
    while not names <= {_text(m) for m in await redis.smembers(_counting_worker.READY)}:
        assert time.monotonic() < deadline, f"workers {names} never started reading"
        await asyncio.sleep(0.1)
