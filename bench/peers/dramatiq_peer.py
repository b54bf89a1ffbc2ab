"""dramatiq with its RedisBroker, and the Results middleware on Redis.

Worker: one process with dramatiq's default 8 threads for the no-op and fixed-rate workloads;
``dramatiq-gevent`` with 1,000 greenlets for the sleeping tasks (``--concurrent``), as
dramatiq's docs advise for I/O-bound actors.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.results import Results
from dramatiq.results.backends import RedisBackend

from bench.peers import common

broker = RedisBroker(url=common.redis_url())
broker.add_middleware(Results(backend=RedisBackend(url=common.redis_url())))
dramatiq.set_broker(broker)


@dramatiq.actor(actor_name="peerbench_work", store_results=True)
def work(run: str, sent: str, delay: float) -> None:
    if delay:
        time.sleep(delay)
    common.record(run, sent)


def main() -> None:
    args = common.parse()
    if args.command == "worker":
        script, threads = ("dramatiq-gevent", "1000") if args.concurrent else ("dramatiq", "8")
        path = str(Path(sys.executable).parent / script)
        argv = [path, "--processes", "1", "--threads", threads, "bench.peers.dramatiq_peer"]
        os.execv(path, argv)
    job = common.produce_of(args)
    common.produce_sync(job, lambda sent: work.send(job.run, sent, job.delay) and None)


if __name__ == "__main__":
    main()
