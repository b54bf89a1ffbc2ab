"""Celery with Redis as broker and result backend.

Worker: the prefork pool with one child for the no-op and fixed-rate workloads; the gevent pool
with 1,000 greenlets for the sleeping tasks (``--concurrent``). Late acks with a prefetch
multiplier of 1: the configuration Celery's docs give for tasks that must not be lost when a
worker dies ("Should I use retry or acks_late?", "Prefetch limits").
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from celery import Celery

from bench.peers import common

app = Celery("peerbench", broker=common.redis_url(), backend=common.redis_url())
app.conf.update(
    task_acks_late=True,
    worker_prefetch_multiplier=1,
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


@app.task(name="peerbench.work")
def work(run: str, sent: str, delay: float) -> None:
    if delay:
        time.sleep(delay)
    common.record(run, sent)


def main() -> None:
    args = common.parse()
    if args.command == "worker":
        pool = ["-P", "gevent", "-c", "1000"] if args.concurrent else ["-P", "prefork", "-c", "1"]
        celery = str(Path(sys.executable).parent / "celery")
        argv = [celery, "-A", "bench.peers.celery_peer", "worker", "--loglevel", "WARNING"]
        os.execv(celery, [*argv, *pool])
    job = common.produce_of(args)
    common.produce_sync(job, lambda sent: work.apply_async((job.run, sent, job.delay)) and None)


if __name__ == "__main__":
    main()
