"""Building blocks for the worker's integration tests: tasks in, results out, a runner around."""

import asyncio
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from libs.blobs import BlobStore
from libs.contracts import (
    DEAD_LETTERS_STREAM,
    RESULTS_STREAM,
    TASKS_GROUP,
    TASKS_STREAM,
    ResultMessage,
    TaskMessage,
)
from libs.streams import decode, encode
from services.worker._execute import DeploymentParams, HandlerParams
from services.worker._limits import Limiter, limits_of
from services.worker.handlers import build_registry
from services.worker.registry import HandlerRegistry
from services.worker.runner import Runner
from services.worker.settings import WorkerSettings

FAST = WorkerSettings(
    worker_concurrency=100,
    worker_block_ms=100,
    worker_visibility_timeout_s=1.0,
    worker_reclaim_interval_s=0.1,
    worker_drain_timeout_s=5.0,
    blob_url=str(Path(tempfile.gettempdir()) / "relai-test-worker-blobs"),
)
"""Settings that keep the suite quick: short blocks, timeouts and reclaim passes (and blobs in
the machine's temporary directory, not the working one)."""


def task(
    handler: str = "echo.text",
    prompt: str = "hi",
    *,
    create_qty: int = 1,
    attempt: int = 1,
    traceparent: str | None = None,
    **params: Any,
) -> TaskMessage:
    return TaskMessage(
        request_id=uuid.uuid4(),
        attempt=attempt,
        handler=handler,
        prompt=prompt,
        params=params,
        create_qty=create_qty,
        traceparent=traceparent,
    )


async def add_tasks(redis: Redis, tasks: Iterable[TaskMessage]) -> list[bytes]:
    pipe = redis.pipeline(transaction=False)
    for message in tasks:
        pipe.xadd(TASKS_STREAM, encode(message))
    return list(await pipe.execute())


async def spend_through_a_limiter(
    redis: Redis, *, integration: str, of: int, cost: int, window_s: float = 3600
) -> TaskMessage:
    """One job parked and taken under ``integration``'s budget, the way a worker does it; its
    lease is left held."""
    message = task(integration=integration, budget=of, window_s=window_s, cost=cost)
    (entry_id,) = await add_tasks(redis, [message])
    limits = limits_of(message.params)
    assert limits is not None
    limiter = Limiter(redis, lease_ttl_s=30, on_parked=lambda _: None)
    await limiter.park(entry_id, message, message.model_dump_json().encode(), limits)
    assert isinstance(await limiter.take(integration), list)
    return message


async def read_results(redis: Redis) -> list[ResultMessage]:
    entries: list[Any] = await redis.xrange(RESULTS_STREAM) or []
    return [decode(ResultMessage, fields) for _, fields in entries]


async def dead_letters(redis: Redis) -> list[tuple[bytes, dict[bytes, bytes]]]:
    """The dead-letters stream's entries: ids and fields (the task's, plus the reason)."""
    entries: list[Any] = await redis.xrange(DEAD_LETTERS_STREAM) or []
    return [(entry_id, fields) for entry_id, fields in entries]


def finals(results: list[ResultMessage]) -> list[ResultMessage]:
    return [r for r in results if r.kind != "started"]


async def wait_results(
    redis: Redis,
    done: Callable[[list[ResultMessage]], bool],
    *,
    timeout: float = 5.0,
) -> list[ResultMessage]:
    deadline = time.monotonic() + timeout
    while True:
        results = await read_results(redis)
        if done(results):
            return results
        if time.monotonic() > deadline:
            raise AssertionError(f"results never matched; got {results}")
        await asyncio.sleep(0.02)


async def wait_finals(redis: Redis, count: int, *, timeout: float = 5.0) -> list[ResultMessage]:
    return await wait_results(redis, lambda rs: len(finals(rs)) >= count, timeout=timeout)


async def pending(redis: Redis) -> int:
    summary = await redis.xpending(TASKS_STREAM, TASKS_GROUP)
    return int(summary["pending"])


async def wait_pending(redis: Redis, count: int, *, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while (now := await pending(redis)) != count:
        if time.monotonic() > deadline:
            raise AssertionError(f"{now} entries pending, expected {count}")
        await asyncio.sleep(0.02)


@asynccontextmanager
async def running(
    redis: Redis,
    settings: WorkerSettings = FAST,
    *,
    consumer: str = "w1",
    registry: HandlerRegistry | None = None,
    handler_params: HandlerParams | None = None,
    deployment_params: DeploymentParams | None = None,
    blobs: BlobStore | None = None,
) -> AsyncIterator[Runner]:
    """A runner running in this event loop; stopped (and drained) on exit."""
    runner = Runner(
        redis,
        registry or build_registry(),
        settings,
        consumer=consumer,
        handler_params=handler_params,
        deployment_params=deployment_params,
        blobs=blobs,
    )
    run = asyncio.create_task(runner.run())
    try:
        await asyncio.wait_for(runner.wait_ready(), 5)
        yield runner
    finally:
        runner.stop()
        await asyncio.wait_for(run, 15)
