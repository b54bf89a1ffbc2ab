"""taskiq with taskiq-redis: the RedisStreamBroker (acknowledged Redis Streams, the broker
taskiq-redis recommends over its list and pub/sub ones) and the Redis result backend.

Worker: ``taskiq worker`` with one worker process; 100 async tasks at once (the default) for
the no-op and fixed-rate workloads, 1,000 for the sleeping tasks (``--concurrent``).
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from taskiq_redis import RedisAsyncResultBackend, RedisStreamBroker

from bench.peers import common

broker = RedisStreamBroker(url=common.redis_url()).with_result_backend(
    RedisAsyncResultBackend(redis_url=common.redis_url())
)


@broker.task(task_name="peerbench.work")
async def work(run: str, sent: str, delay: float) -> None:
    if delay:
        await asyncio.sleep(delay)
    await common.arecord(run, sent)


async def _produce(job: common.Produce) -> None:
    await broker.startup()
    try:

        async def send(sent: str) -> None:
            await work.kiq(job.run, sent, job.delay)

        await common.produce_async(job, send)
    finally:
        await broker.shutdown()


def main() -> None:
    args = common.parse()
    if args.command == "worker":
        taskiq = str(Path(sys.executable).parent / "taskiq")
        tasks = "1000" if args.concurrent else "100"
        argv = [taskiq, "worker", "bench.peers.taskiq_peer:broker", "--workers", "1"]
        os.execv(taskiq, [*argv, "--max-async-tasks", tasks, "--log-level", "WARNING"])
    asyncio.run(_produce(common.produce_of(args)))


if __name__ == "__main__":
    main()
