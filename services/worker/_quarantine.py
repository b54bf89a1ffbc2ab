"""Quarantine: tasks that took their workers down twice run one at a time per worker, each run
counted in Redis until it finishes; one that keeps taking its worker down is dead-lettered.
(Why not count deliveries: see ``_dead_letters``.)"""

import asyncio
from collections.abc import Callable

from redis.asyncio import Redis

from libs.logs import get_logger
from services.worker._backoff import describe
from services.worker._dead_letters import quarantine_end, quarantine_start, retire
from services.worker._entries import Fields
from services.worker._writer import ResultWriter

log = get_logger(__name__)


class Quarantine:
    def __init__(
        self,
        redis: Redis,
        writer: ResultWriter,
        *,
        consumer: str,
        max_crashes: int,
        start: Callable[[bytes, Fields], "asyncio.Task[None]"],
        leave: Callable[[bytes], None],
    ) -> None:
        self._redis = redis
        self._writer = writer
        self._consumer = consumer
        self._max_crashes = max_crashes
        self._start = start
        self._leave = leave
        self._waiting: asyncio.Queue[tuple[bytes, Fields, int]] = asyncio.Queue()

    def add(self, entry_id: bytes, fields: Fields, delivered: int) -> None:
        """Queue a claimed entry (its slot taken, held by this worker) for a quarantined run."""
        self._waiting.put_nowait((entry_id, fields, delivered))

    async def run(self, stopping: asyncio.Event) -> None:
        stop = asyncio.ensure_future(stopping.wait())
        try:
            while True:
                taking = asyncio.ensure_future(self._waiting.get())
                await asyncio.wait({taking, stop}, return_when=asyncio.FIRST_COMPLETED)
                if not taking.done():
                    taking.cancel()
                    break
                await self._run_one(*taking.result())
        finally:
            stop.cancel()
            while not self._waiting.empty():
                entry_id, _, _ = self._waiting.get_nowait()
                self._leave(entry_id)

    async def _run_one(self, entry_id: bytes, fields: Fields, delivered: int) -> None:
        try:
            crashes = await quarantine_start(self._redis, entry_id)
        except Exception as exc:
            self._leave(entry_id)
            log.warning("task.quarantine_failed", entry_id=entry_id.decode(), error=describe(exc))
            return
        if crashes >= self._max_crashes:
            self._leave(entry_id)  # the slot; the entry is acked with its dead letter
            retire(
                self._writer,
                consumer=self._consumer,
                entry_id=entry_id,
                fields=fields,
                deliveries=delivered - 1,
                crashes=crashes,
            )
            return
        log.warning("task.quarantined", entry_id=entry_id.decode(), crashes=crashes)
        job = self._start(entry_id, fields)
        await asyncio.wait({job})  # drained like any job when the worker stops
        if job.cancelled() or job.exception() is not None:
            return
        try:
            await quarantine_end(self._redis, entry_id)
        except Exception as exc:  # the key expires; one crash counted too many at worst
            log.warning("task.quarantine_end_failed", error=describe(exc))
