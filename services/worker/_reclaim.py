"""Reclaim: entries idle in the group's pending list longer than the visibility timeout belong
to a dead (or stalled) consumer; ``XAUTOCLAIM`` takes them over and they run like new ones, from
their ``QUARANTINE_FROM``-th delivery in quarantine (see ``_dead_letters``)."""

import asyncio
from collections.abc import Callable

from redis.asyncio import Redis

from libs.contracts import TASKS_GROUP, TASKS_STREAM
from libs.logs import get_logger
from services.worker._dead_letters import QUARANTINE_FROM, delivery_counts
from services.worker._entries import Fields, autoclaim_entries
from services.worker._quarantine import Quarantine
from services.worker._slots import Slots
from services.worker.metrics import TASKS_RECLAIMED

log = get_logger(__name__)


class Reclaimer:
    def __init__(
        self,
        redis: Redis,
        consumer: str,
        slots: Slots,
        owned: set[bytes],
        quarantine: Quarantine,
        start: Callable[[bytes, Fields | None], "asyncio.Task[None]"],
        *,
        batch: int,
        visibility_ms: int,
    ) -> None:
        """``owned`` are the entries this process holds (never reclaimed from itself); ``start``
        runs an entry in a slot the caller took."""
        self._redis = redis
        self._consumer = consumer
        self._slots = slots
        self._owned = owned
        self._quarantine = quarantine
        self._start = start
        self._batch = batch
        self._visibility_ms = visibility_ms
        self._cursor = b"0-0"

    async def run(self, stopping: asyncio.Event) -> None:
        """Take over entries idle past the visibility timeout, a batch at a time as free slots
        allow, until the scan is round or ``stopping``."""
        while not stopping.is_set():
            count = self._slots.take(self._batch)
            if not count:
                return
            try:
                reply = await self._redis.xautoclaim(
                    TASKS_STREAM,
                    TASKS_GROUP,
                    self._consumer,
                    self._visibility_ms,
                    start_id=self._cursor,
                    count=count,
                )
                self._cursor, claimed, deleted = autoclaim_entries(reply)
                deliveries = await delivery_counts(
                    self._redis, [e for e, f in claimed if f is not None and e not in self._owned]
                )
            except BaseException:
                self._slots.release(count)
                raise
            started = 0
            for entry_id, fields in claimed:
                if entry_id in self._owned:
                    continue
                if fields is None:
                    deleted.append(entry_id)
                    continue
                delivered = deliveries.get(entry_id, 0)
                log.info("task.reclaimed", entry_id=entry_id.decode(), deliveries=delivered)
                TASKS_RECLAIMED.inc()
                if delivered >= QUARANTINE_FROM:
                    self._owned.add(entry_id)
                    self._quarantine.add(entry_id, fields, delivered)
                else:
                    self._start(entry_id, fields)
                started += 1
            self._slots.release(count - started)
            if deleted:
                log.warning("task.deleted", entries=len(deleted))
                await self._redis.xack(TASKS_STREAM, TASKS_GROUP, *deleted)
            if self._cursor == b"0-0":
                return
