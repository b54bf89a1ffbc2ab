"""arq with its defaults (Redis is its only broker and keeps its results): ``max_jobs`` 10 for
the no-op and fixed-rate workloads, 1,000 for the sleeping tasks (``--concurrent``)."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

from arq import create_pool
from arq.connections import RedisSettings
from arq.worker import func

from bench.peers import common


async def work(ctx: dict[str, Any], run: str, sent: str, delay: float) -> None:
    if delay:
        await asyncio.sleep(delay)
    await common.arecord(run, sent)


class WorkerSettings:
    functions = [func(work, name="work")]
    redis_settings = RedisSettings.from_dsn(common.redis_url())


class ConcurrentWorkerSettings:
    # arq reads a settings class's own attributes only, not inherited ones.
    functions = WorkerSettings.functions
    redis_settings = WorkerSettings.redis_settings
    max_jobs = 1000


async def _produce(job: common.Produce) -> None:
    pool = await create_pool(WorkerSettings.redis_settings)
    try:

        async def send(sent: str) -> None:
            await pool.enqueue_job("work", job.run, sent, job.delay)

        await common.produce_async(job, send)
    finally:
        await pool.aclose()


def main() -> None:
    args = common.parse()
    if args.command == "worker":
        arq = str(Path(sys.executable).parent / "arq")
        settings = "ConcurrentWorkerSettings" if args.concurrent else "WorkerSettings"
        os.execv(arq, [arq, f"bench.peers.arq_peer.{settings}"])
    asyncio.run(_produce(common.produce_of(args)))


if __name__ == "__main__":
    main()
