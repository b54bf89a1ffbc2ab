"""The results consumer: reads job progress from ``relai:results`` (group ``api``), writes it to
Postgres idempotently, acknowledges it, then fans the new states out to every API replica.

Acknowledgement comes after the database commit: a crash in between redelivers the batch,
and the idempotent statements make the second delivery change nothing.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from typing import Any

import asyncpg
from pydantic import ValidationError
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from tenacity import (
    AsyncRetrying,
    retry,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

from libs.contracts import (
    EVENT_BATCH,
    EVENTS_CHANNEL,
    RESULTS_GROUP,
    RESULTS_STREAM,
    RequestStatus,
    ResultMessage,
)
from libs.logs import get_logger
from libs.outcomes import (
    Ended,
    Started,
    StepEnded,
    StepStarted,
    by_request,
    credits_moved,
    events_of,
    record_outcomes,
    record_request_steps,
)
from libs.streams import Entry, decode, ensure_group, entries_of
from libs.telemetry import batch_spans, since_entry
from services.api.metrics import (
    CREDITS_REFUNDED,
    CREDITS_SETTLED,
    HOP_RECORD,
    RESULTS_RECORDED,
)

log = get_logger(__name__)

_transient_db = retry(
    retry=retry_if_exception_type((asyncpg.DeadlockDetectedError, asyncpg.SerializationError)),
    wait=wait_random_exponential(multiplier=0.01, max=0.5),
    stop=stop_after_attempt(8),
    reraise=True,
)

_OUTAGES = (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError, RedisConnectionError)
"""Errors of a server that went away: the batch is ours and is retried here until it is back,
rather than left for another process to reclaim after the idle time."""


class ResultsConsumer:
    def __init__(
        self,
        pool: asyncpg.Pool[Any],
        redis: Redis,
        *,
        consumer: str,
        batch: int,
        block_ms: int,
        reclaim_idle_s: float,
        in_flight: int = 2,
    ) -> None:
        self._pool = pool
        self._redis = redis
        self._consumer = consumer
        self._batch = batch
        self._block_ms = block_ms
        self._reclaim_idle_ms = int(reclaim_idle_s * 1000)
        self._in_flight = asyncio.Semaphore(in_flight)
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        await ensure_group(self._redis, RESULTS_STREAM, RESULTS_GROUP)
        # First whatever this consumer name left pending before a restart, then new entries.
        cursor = "0"
        reclaim_at = 0.0
        loop = asyncio.get_running_loop()
        while True:
            try:
                if loop.time() >= reclaim_at:
                    await self._reclaim()
                    reclaim_at = loop.time() + self._reclaim_idle_ms / 2000
                entries = await self._read(cursor)
                if cursor == "0" and not entries:
                    cursor = ">"
                    continue
                if not entries:
                    continue
                if cursor == "0":
                    await self.handle(entries)
                else:
                    await self._in_flight.acquire()
                    task = asyncio.create_task(self._handle_in_background(entries))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
            except ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                log.warning("results group missing; recreating it")
                await ensure_group(self._redis, RESULTS_STREAM, RESULTS_GROUP)
            except (RedisConnectionError, OSError, asyncpg.PostgresError) as exc:
                log.warning("results consumer cannot proceed; retrying", error=repr(exc))
                await asyncio.sleep(1.0)

    async def _handle_in_background(self, entries: list[Entry]) -> None:
        """Handle a batch while the next is read. Batches may finish out of order; statuses only
        move forward, so the database cannot go back, and watchers skip a state older than one
        they have. A batch that meets an outage is retried until its servers are back; one that
        fails otherwise stays pending and is reclaimed after the idle time."""
        try:
            async for attempt in AsyncRetrying(
                retry=retry_if_exception_type(_OUTAGES),
                wait=wait_random_exponential(multiplier=0.1, max=2.0),
                before_sleep=lambda state: log.warning(
                    "results batch waits for its servers",
                    entries=len(entries),
                    error=repr(state.outcome.exception() if state.outcome else None),
                ),
                reraise=True,
            ):
                with attempt:
                    await self.handle(entries)
        except Exception:
            log.exception("results batch failed; it will be reclaimed", entries=len(entries))
        finally:
            self._in_flight.release()

    async def _read(self, cursor: str) -> list[Entry]:
        block = None if cursor == "0" else self._block_ms
        response = await self._redis.xreadgroup(
            RESULTS_GROUP,
            self._consumer,
            {RESULTS_STREAM: cursor},
            count=self._batch,
            block=block,
        )
        return entries_of(response)

    async def _reclaim(self) -> None:
        """Take over results that a dead API process read but never acknowledged."""
        start = "0-0"
        while True:
            next_start, entries, *_deleted = await self._redis.xautoclaim(
                RESULTS_STREAM,
                RESULTS_GROUP,
                self._consumer,
                min_idle_time=self._reclaim_idle_ms,
                start_id=start,
                count=self._batch,
            )
            if entries:
                await self.handle(list(entries))
            if next_start in (b"0-0", "0-0"):
                return
            start = next_start

    async def handle(self, entries: list[Entry]) -> None:
        """Write one batch; then, in one round trip, acknowledge it and publish what changed."""
        started: dict[uuid.UUID, ResultMessage] = {}
        finished: dict[uuid.UUID, ResultMessage] = {}
        traceparents: list[str | None] = []
        steps: list[ResultMessage] = []
        for _entry_id, fields in entries:
            try:
                message = decode(ResultMessage, fields)
            except (ValidationError, KeyError) as exc:
                log.error("dropping malformed result", error=str(exc))
                continue
            traceparents.append(message.traceparent)
            if message.step is not None:
                steps.append(message)
                continue
            _keep_latest(started if message.kind == "started" else finished, message)
        with batch_spans("relai.results.persist", traceparents):
            rows = await self._write(started, finished)
            settled, refunded = credits_moved(rows)
            CREDITS_SETTLED.inc(settled)
            CREDITS_REFUNDED.inc(refunded)
            if steps:
                rows = [*rows, *await self._write_steps(steps)]
            for entry_id, _ in entries:
                HOP_RECORD.observe(since_entry(entry_id))
            for status, count in Counter(str(r["status"]) for r in rows).items():
                RESULTS_RECORDED.labels(status=status).inc(count)
            ids = [entry_id for entry_id, _ in entries]
            pipe = self._redis.pipeline(transaction=True)
            pipe.xack(RESULTS_STREAM, RESULTS_GROUP, *ids)
            pipe.xdel(RESULTS_STREAM, *ids)
            if rows:
                pipe.publish(EVENTS_CHANNEL, _events(rows))
            await pipe.execute()

    @_transient_db
    async def _write(
        self, started: dict[uuid.UUID, ResultMessage], finished: dict[uuid.UUID, ResultMessage]
    ) -> list[asyncpg.Record]:
        return await record_outcomes(
            self._pool,
            started=[Started(m.request_id, m.attempt, m.tier) for m in started.values()],
            ended=[
                Ended(
                    m.request_id,
                    m.attempt,
                    "succeeded" if m.kind == "succeeded" else "failed",
                    results=m.results if m.kind == "succeeded" else None,
                    error=m.error if m.kind == "failed" else None,
                    usage=m.usage,
                    tier=m.tier,
                    deployment=m.deployment,
                    model=m.model,
                )
                for m in finished.values()
            ],
        )

    @_transient_db
    async def _write_steps(self, messages: list[ResultMessage]) -> list[asyncpg.Record]:
        """Reports on the steps of deals' requests (``libs.outcomes.steps``)."""
        ended: dict[tuple[uuid.UUID, int], ResultMessage] = {}
        for m in messages:
            key = (m.request_id, m.step or 0)
            if m.kind != "started" and (key not in ended or ended[key].attempt < m.attempt):
                ended[key] = m
        reports = by_request(
            started=[
                StepStarted(m.request_id, m.step or 0, m.attempt)
                for m in messages
                if m.kind == "started"
            ],
            ended=[
                StepEnded(
                    m.request_id,
                    m.step or 0,
                    m.attempt,
                    "succeeded" if m.kind == "succeeded" else "failed",
                    results=m.results if m.kind == "succeeded" else None,
                    error=m.error if m.kind == "failed" else None,
                    usage=m.usage,
                )
                for m in ended.values()
            ],
        )
        rows: list[asyncpg.Record] = []
        for request_id, starts, ends in reports:
            async with self._pool.acquire() as conn, conn.transaction():
                rows += await record_request_steps(conn, request_id, started=starts, ended=ends)
        return rows


def _events(rows: list[asyncpg.Record]) -> bytes:
    for r in rows:
        if r["status"] == RequestStatus.FAILED:
            log.info("request.failed", request_id=str(r["id"]), error=r["error"])
    return EVENT_BATCH.dump_json(events_of(rows), exclude_none=True)


def _keep_latest(latest: dict[uuid.UUID, ResultMessage], message: ResultMessage) -> None:
    """Keep ``message`` in ``latest`` unless one of a later attempt of its request is there."""
    kept = latest.get(message.request_id)
    if kept is None or kept.attempt < message.attempt:
        latest[message.request_id] = message
