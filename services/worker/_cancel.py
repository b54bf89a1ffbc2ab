"""Cancelled requests, as a worker learns of them: a marker key, checked before a job starts,
and a pub/sub channel that reaches the jobs already running."""

import asyncio
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from redis.asyncio import Redis
from redis.exceptions import RedisError

from libs.contracts import CANCEL_CHANNEL, cancelled_key
from libs.logs import get_logger
from services.worker._backoff import Backoff, describe
from services.worker._coalesce import Coalescer

log = get_logger(__name__)


class Watch:
    __slots__ = ("cancelled", "task")

    def __init__(self, task: "asyncio.Task[object] | None") -> None:
        self.cancelled = False
        self.task = task


class Cancellations:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._watched: dict[uuid.UUID, Watch] = {}
        self._check = Coalescer(self._marked)
        self.subscribed = asyncio.Event()

    @contextmanager
    def watch(self, request_id: uuid.UUID) -> Iterator[Watch]:
        """While the block runs, a cancellation of ``request_id`` cancels the current task (the
        job), with ``cancelled`` set. Watch first, then check ``is_marked``: a cancellation in
        between is then seen by one or the other."""
        watch = Watch(asyncio.current_task())
        self._watched[request_id] = watch
        try:
            yield watch
        finally:
            if self._watched.get(request_id) is watch:
                del self._watched[request_id]

    async def is_marked(self, request_id: uuid.UUID) -> bool:
        """Whether the request carries the cancelled marker. Unknown (Redis unreachable) counts
        as no: the job runs, and if it was cancelled its result changes nothing."""
        try:
            return await self._check(request_id)
        except (RedisError, OSError) as exc:
            log.warning("cancel.check_failed", error=describe(exc))
            return False

    async def _marked(self, request_ids: list[uuid.UUID]) -> list[bool]:
        """One round trip for every job checking at the same time."""
        pipe = self._redis.pipeline(transaction=False)
        for request_id in request_ids:
            pipe.exists(cancelled_key(request_id))
        return [bool(n) for n in await pipe.execute()]

    def cancel(self, request_id: uuid.UUID) -> None:
        watch = self._watched.get(request_id)
        if watch is not None and not watch.cancelled and watch.task is not None:
            log.info("job.cancelling", request_id=str(request_id))
            watch.cancelled = True
            watch.task.cancel()

    async def run(self) -> None:
        """Follow the cancel channel until cancelled, resubscribing after a lost connection."""
        backoff = Backoff()
        while True:
            try:
                async with self._redis.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(CANCEL_CHANNEL)
                    self.subscribed.set()
                    backoff.reset()
                    async for message in pubsub.listen():
                        try:
                            self.cancel(uuid.UUID(message["data"].decode()))
                        except (ValueError, AttributeError):
                            log.error("cancel.malformed", data=repr(message["data"])[:100])
            except (RedisError, OSError) as exc:
                self.subscribed.clear()
                log.warning("cancel.subscription_lost", error=describe(exc))
                await backoff.sleep()
