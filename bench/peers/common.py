"""What every peer module shares: its command line, the producer's pacing and the one RPUSH per
task that records a completion.

This runs in ``.venv-peers``: it imports the standard library only (``redis`` lazily, inside the
functions that record), never Relai's code.

A completion is the string ``"<sent_ts> <done_ts>"``, both ``time.time()`` with six decimals,
pushed to the Redis list ``peerbench:done:<run>``. Every peer's task body does exactly this one
RPUSH besides its own work, so the extra cost is the same for all of them.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

WORKLOADS = ("noop", "rate", "sleep")
SLEEP_S = 1.0
"""How long a task of the ``sleep`` workload sleeps."""
PRODUCER_CONCURRENCY = 64
"""Enqueues in flight at once in an asyncio producer's unpaced workloads (as Relai's bench)."""


def redis_url() -> str:
    return os.environ.get("PEERS_REDIS_URL", "redis://127.0.0.1:6379/13")


def database_url() -> str:
    return os.environ.get(
        "PEERS_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/relai_bench_peers"
    )


def done_key(run: str) -> str:
    return f"peerbench:done:{run}"


def stamp(ts: float | None = None) -> str:
    return f"{time.time() if ts is None else ts:.6f}"


def completion(sent: str) -> str:
    return f"{sent} {stamp()}"


def delay_of(workload: str) -> float:
    return SLEEP_S if workload == "sleep" else 0.0


_sync_client: Any = None


def record(run: str, sent: str) -> None:
    """The completion of a task, from a synchronous worker (one client per process)."""
    global _sync_client
    if _sync_client is None:
        import redis

        _sync_client = redis.Redis.from_url(redis_url())
    _sync_client.rpush(done_key(run), completion(sent))


_async_clients: dict[int, Any] = {}


async def arecord(run: str, sent: str) -> None:
    """The completion of a task, from an asyncio worker (one client per event loop)."""
    loop = id(asyncio.get_running_loop())
    client = _async_clients.get(loop)
    if client is None:
        import redis.asyncio

        client = _async_clients[loop] = redis.asyncio.Redis.from_url(redis_url())
    await client.rpush(done_key(run), completion(sent))


@dataclass(frozen=True)
class Produce:
    workload: str
    n: int
    rate: float
    run: str

    @property
    def delay(self) -> float:
        return delay_of(self.workload)


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    commands = parser.add_subparsers(dest="command", required=True)
    worker = commands.add_parser("worker", help="run the peer's worker until SIGTERM")
    worker.add_argument(
        "--concurrent",
        action="store_true",
        help="the configuration for many slow tasks at once (the sleep workload)",
    )
    produce = commands.add_parser("produce", help="enqueue one workload, then exit")
    produce.add_argument("--workload", choices=WORKLOADS, required=True)
    produce.add_argument("--n", type=int, required=True)
    produce.add_argument("--rate", type=float, default=0.0)
    produce.add_argument("--run", required=True)
    return parser.parse_args(argv)


def produce_of(args: argparse.Namespace) -> Produce:
    return Produce(workload=args.workload, n=args.n, rate=args.rate, run=args.run)


def produce_sync(job: Produce, send: Callable[[str], None]) -> None:
    """Enqueue ``job.n`` tasks one after the other: as fast as ``send`` goes, or at
    ``job.rate`` per second for the ``rate`` workload. ``send`` gets the send timestamp."""
    start = time.perf_counter()
    for i in range(job.n):
        if job.workload == "rate":
            wait = start + i / job.rate - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
        send(stamp())


async def produce_async(job: Produce, send: Callable[[str], Coroutine[Any, Any, None]]) -> None:
    """As ``produce_sync`` for an asyncio client: unpaced workloads keep
    ``PRODUCER_CONCURRENCY`` enqueues in flight; the paced one starts each on its schedule."""
    if job.workload == "rate":
        start = time.perf_counter()
        pending: set[asyncio.Task[None]] = set()
        for i in range(job.n):
            wait = start + i / job.rate - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
            task = asyncio.create_task(send(stamp()))
            pending.add(task)
            task.add_done_callback(pending.discard)
        if pending:
            await asyncio.gather(*pending)
        return
    remaining = iter(range(job.n))

    async def sender() -> None:
        for _ in remaining:
            await send(stamp())

    await asyncio.gather(*(sender() for _ in range(min(PRODUCER_CONCURRENCY, job.n))))
