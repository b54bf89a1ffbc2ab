"""Batched, atomic result writes: each flush is one MULTI/EXEC of XADDs, one XACK and one XDEL."""

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError
from redis.typing import EncodableT, FieldT

from libs.contracts import (
    DEAD_LETTERS_STREAM,
    LIMITS_LIVE_KEY,
    RESULTS_STREAM,
    TASKS_GROUP,
    TASKS_STREAM,
)
from libs.contracts.limits import held_key, leases_key, running_key
from libs.logs import get_logger
from services.worker._backoff import Backoff, describe, is_nogroup
from services.worker._limits import Lease
from services.worker.metrics import HOP_WRITE

log = get_logger(__name__)

_DEAD_LETTERS_MAX = 100_000
"""The dead-letters stream keeps about this many of the latest entries."""

Encoded = dict[FieldT, EncodableT]
"""Stream entry fields of an encoded message, as ``libs.streams.encode`` makes them."""


@dataclass(frozen=True, slots=True)
class Pending:
    result: Encoded | None
    """An encoded ResultMessage to XADD to ``results``, if any."""
    ack: bytes | None
    """A task entry id to XACK in the same transaction, once its final result is written."""
    dead_letter: Encoded | None = None
    """The task's fields, to XADD to the dead-letters stream in the same transaction."""
    release: Lease | None = None
    """An integration lease to give back in the same transaction (a job run under limits)."""
    added: float = 0.0
    """When it was buffered (``time.perf_counter``)."""


class ResultWriter:
    """Buffers results and acks; one background task flushes whatever is buffered at once.

    A final result and the XACK of its task go in the same EXEC, so a task is never acked
    without its result. A batch whose EXEC reply is lost is written again: duplicate results,
    which the results consumer already tolerates.
    """

    def __init__(
        self,
        redis: Redis,
        *,
        on_acked: Callable[[list[bytes]], None],
        on_nogroup: Callable[[], Awaitable[None]],
    ) -> None:
        self._redis = redis
        self._on_acked = on_acked
        self._on_nogroup = on_nogroup
        self._buffer: list[Pending] = []
        self._wake = asyncio.Event()
        self._closed = False

    def __len__(self) -> int:
        return len(self._buffer)

    def add(
        self,
        result: Encoded | None,
        *,
        ack: bytes | None = None,
        dead_letter: Encoded | None = None,
        release: Lease | None = None,
    ) -> None:
        self._buffer.append(Pending(result, ack, dead_letter, release, time.perf_counter()))
        self._wake.set()

    def close(self) -> None:
        """Let ``run`` return once everything buffered is written."""
        self._closed = True
        self._wake.set()

    async def run(self) -> None:
        backoff = Backoff()
        while True:
            if not self._buffer:
                if self._closed:
                    return
                await self._wake.wait()
                self._wake.clear()
                continue
            batch, self._buffer = self._buffer, []
            try:
                await self._flush(batch)
            except (RedisError, OSError) as exc:
                self._buffer[:0] = batch
                log.warning("results.flush_failed", error=describe(exc), buffered=len(self._buffer))
                await backoff.sleep()
            else:
                backoff.reset()
                written = time.perf_counter()
                for p in batch:
                    if p.result is not None and (p.ack is not None or p.release is not None):
                        HOP_WRITE.observe(written - p.added)  # a final result

    async def _flush(self, batch: list[Pending]) -> None:
        acks = [p.ack for p in batch if p.ack is not None]
        pipe = self._redis.pipeline(transaction=True)
        for p in batch:
            if p.result is not None:
                pipe.xadd(RESULTS_STREAM, p.result)
            if p.dead_letter is not None:
                pipe.xadd(
                    DEAD_LETTERS_STREAM, p.dead_letter, maxlen=_DEAD_LETTERS_MAX, approximate=True
                )
        for lease in (p.release for p in batch if p.release is not None):
            pipe.zrem(leases_key(lease.integration), lease.id)
            pipe.zrem(running_key(lease.integration, lease.user), lease.id)
            pipe.hdel(held_key(lease.integration), lease.id)
            pipe.srem(LIMITS_LIVE_KEY, str(lease.request_id))
        if acks:
            # Acked entries are deleted too: the stream holds only work not yet done.
            pipe.xack(TASKS_STREAM, TASKS_GROUP, *acks)
            pipe.xdel(TASKS_STREAM, *acks)
        replies = await pipe.execute(raise_on_error=False)
        # EXEC ran: retrying would duplicate the commands that did succeed, so errors are logged.
        errors = [r for r in replies if isinstance(r, Exception)]
        for error in errors[:3]:
            log.error("results.command_failed", error=describe(error), failed=len(errors))
        if any(is_nogroup(e) for e in errors):
            await self._on_nogroup()
        if acks:
            self._on_acked(acks)
