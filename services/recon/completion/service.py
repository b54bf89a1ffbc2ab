"""The completion loop: find requests nobody is working on, and re-drive or end them.

Order matters. Candidates are read from Postgres *before* the streams: a candidate has no outbox
row, so the relay had already committed its ``XADD`` and the stream read that follows sees it.
Each candidate is then handled in its own transaction that re-checks it under a row lock, so a
request that progressed meanwhile, or that another recon replica took, is left alone.

Redis losing its data (a restart without persistence, a flush) is told by the absence of
``EPOCH_KEY``, which recon sets after each full sweep. Then the loop does not wait for requests to
look stuck: it recreates the streams' groups and sweeps every unfinished request last touched
before it noticed, re-driving those absent from the streams at once.

A failover (Sentinel promoting a replica) may lose less: the replica, replicated asynchronously,
has the epoch but may miss the last writes before the primary died (an ``XADD`` whose outbox row
is gone, a group created a moment before). The epoch records the primary's replication id
(``master_replid``, which a promotion or a restart changes); a primary with another one gets the
same sweep.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import asyncpg
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from libs.contracts import (
    EPOCH_KEY,
    EVENT_BATCH,
    EVENTS_CHANNEL,
    RESULTS_GROUP,
    RESULTS_STREAM,
    TASKS_GROUP,
    TASKS_STREAM,
)
from libs.db import DATABASE_ERRORS, PgPool
from libs.logs import bind_request, get_logger
from libs.loops import every
from libs.outcomes import (
    Ended,
    StepEnded,
    credits_moved,
    events_of,
    record_outcomes,
    record_request_steps,
)
from libs.streams import ensure_group
from libs.telemetry import span
from services.recon.completion import repository, streams
from services.recon.completion.schemas import CompletionReport
from services.recon.metrics.registry import CREDITS_REFUNDED, FAILED, REDRIVEN

log = get_logger(__name__)

Outcome = Literal["redriven", "failed"]


@dataclass(frozen=True, slots=True)
class RunResult:
    redriven: int = 0
    failed: int = 0
    skipped: bool = False


class CompletionLoop:
    def __init__(
        self,
        pool: PgPool,
        redis: Redis,
        *,
        interval_s: float,
        stuck_after_s: float,
        max_attempts: int,
        batch: int,
        deadline_grace_s: float = 5.0,
        stream_chunk: int = 1000,
    ) -> None:
        self._pool = pool
        self._redis = redis
        self._interval_s = interval_s
        self._stuck_after_s = stuck_after_s
        self._deadline_grace_s = deadline_grace_s
        self._max_attempts = max_attempts
        self._batch = batch
        self._stream_chunk = stream_chunk
        self._last_run_at: datetime | None = None
        self._redriven = 0
        self._failed = 0
        self._skipped = 0
        self._recoveries = 0

    def report(self) -> CompletionReport:
        return CompletionReport(
            last_run_at=self._last_run_at,
            redriven=self._redriven,
            failed=self._failed,
            skipped_runs=self._skipped,
            redis_recoveries=self._recoveries,
        )

    async def run_forever(self) -> None:
        await every(
            self._interval_s,
            self.run_once,
            name="completion",
            expected=DATABASE_ERRORS,
            on_error=self._run_failed,
        )

    def _run_failed(self, _: Exception) -> None:
        self._skipped += 1

    async def run_once(self) -> RunResult:
        try:
            epoch = await self._redis.get(EPOCH_KEY)
            replid = await self._replication_id()
        except (RedisError, OSError) as exc:
            return self._skip(exc)
        marked = _epoch_replid(epoch)
        if epoch is not None and replid is not None and marked is None:
            # An epoch from before replication ids were recorded: adopt this primary's.
            try:
                await self._redis.set(EPOCH_KEY, _epoch_value(epoch.split()[0], replid))
            except (RedisError, OSError) as exc:
                return self._skip(exc)
            marked = replid
        if epoch is None:
            log.warning("completion.redis_data_lost")
            result = await self._recover(replid)
        elif replid is not None and marked != replid:
            log.warning("completion.redis_primary_changed", was=marked, now=replid)
            result = await self._recover(replid)
        else:
            async with self._pool.acquire() as conn:
                candidates = await repository.stuck_requests(
                    conn,
                    older_than_s=self._stuck_after_s,
                    grace_s=self._deadline_grace_s,
                    limit=self._batch,
                )
            result = await self._sweep(candidates)
        if not result.skipped:
            self._last_run_at = datetime.now(UTC)
        return result

    async def _replication_id(self) -> str | None:
        """The primary's replication id, or None where ``INFO`` is not allowed."""
        try:
            info = await self._redis.info("replication")
        except ResponseError:
            return None
        replid = info.get("master_replid")
        return str(replid) if replid else None

    async def _recover(self, replid: str | None) -> RunResult:
        """Redis lost its data, or some of it: recreate the groups, then re-drive every
        unfinished request that the streams do not hold, however recent."""
        try:
            await ensure_group(self._redis, TASKS_STREAM, TASKS_GROUP)
            await ensure_group(self._redis, RESULTS_STREAM, RESULTS_GROUP)
        except (RedisError, OSError) as exc:
            return self._skip(exc)
        async with self._pool.acquire() as conn:
            cutoff = await repository.database_now(conn)
        redriven = failed = 0
        after: repository.Candidate | None = None
        while True:
            async with self._pool.acquire() as conn:
                batch = await repository.stuck_requests(
                    conn, before=cutoff, after=after, limit=self._batch
                )
            swept = await self._sweep(batch)
            if swept.skipped:
                return swept
            redriven += swept.redriven
            failed += swept.failed
            if len(batch) < self._batch:
                break
            after = batch[-1]
        try:
            await self._redis.set(EPOCH_KEY, _epoch_value(cutoff.isoformat(), replid))
        except (RedisError, OSError) as exc:
            return self._skip(exc)
        self._recoveries += 1
        log.warning("completion.redis_recovered", redriven=redriven, failed=failed)
        return RunResult(redriven=redriven, failed=failed)

    async def _sweep(self, candidates: list[repository.Candidate]) -> RunResult:
        if candidates:
            try:
                live = await streams.live_request_ids(
                    self._redis, (TASKS_STREAM, RESULTS_STREAM), chunk=self._stream_chunk
                )
            except (RedisError, OSError) as exc:
                return self._skip(exc)
            candidates = [c for c in candidates if c.id not in live]
        redriven = failed = 0
        for candidate in candidates:
            outcome = await self._complete(candidate)
            redriven += outcome == "redriven"
            failed += outcome == "failed"
        self._redriven += redriven
        self._failed += failed
        return RunResult(redriven=redriven, failed=failed)

    def _skip(self, exc: BaseException) -> RunResult:
        # Without the streams, live work cannot be told from lost work: re-driving blindly
        # would run it twice.
        self._skipped += 1
        log.warning("completion.skipped", reason="redis unreachable", error=repr(exc))
        return RunResult(skipped=True)

    async def _complete(self, candidate: repository.Candidate) -> Outcome | None:
        if candidate.deal:
            return await self._complete_deal(candidate)
        with bind_request(candidate.id):
            async with self._pool.acquire() as conn, conn.transaction():
                request = await repository.lock_unchanged(conn, candidate)
                if request is None:
                    return None
                redrive = request.attempt < self._max_attempts
                attributes: dict[str, str | int] = {
                    "relai.request_id": str(request.id),
                    "relai.attempt": request.attempt,
                }
                with span(
                    "relai.recon.redrive" if redrive else "relai.recon.fail",
                    traceparent=request.traceparent,
                    attributes=attributes,
                ):
                    if redrive:
                        await repository.redrive(conn, request)
                        rows = None
                    else:
                        error = f"no result after {request.attempt} attempts"
                        ended = Ended(request.id, request.attempt, "failed", error=error)
                        rows = await record_outcomes(conn, ended=[ended])
            if rows is None:
                REDRIVEN.inc()
                log.info("request.redriven", attempt=request.attempt + 1)
                return "redriven"
            if not rows:
                return None
            FAILED.inc()
            CREDITS_REFUNDED.inc(credits_moved(rows)[1])
            log.info("request.failed", attempt=request.attempt, error=error)
            await self._announce(rows)
            return "failed"

    async def _complete_deal(self, candidate: repository.Candidate) -> Outcome | None:
        """Re-drive each lost step of a deal's request, or fail it after its last attempt (which
        refunds it, and the pipeline steps after it, as a worker's failure would)."""
        with bind_request(candidate.id):
            async with self._pool.acquire() as conn, conn.transaction():
                if not await repository.lock_unchanged_deal(conn, candidate):
                    return None
                ended: list[StepEnded] = []
                for step in await repository.open_steps(conn, candidate.id):
                    if step.attempt >= self._max_attempts:
                        error = f"no result after {step.attempt} attempts"
                        ended.append(
                            StepEnded(candidate.id, step.idx, step.attempt, "failed", error=error)
                        )
                        continue
                    await repository.redrive_step(conn, candidate.id, step)
                rows = await record_request_steps(conn, candidate.id, started=[], ended=ended)
            log.info("deal.redriven", failed_steps=[e.step for e in ended])
            if rows:
                await self._announce(rows)
            return "failed" if ended else "redriven"

    async def _announce(self, rows: list[asyncpg.Record]) -> None:
        """Tell the API replicas, so WebSocket watchers see the failure. Best effort: the state
        is committed and polling shows it."""
        events = events_of(rows)
        if not events:
            return
        try:
            await self._redis.publish(
                EVENTS_CHANNEL, EVENT_BATCH.dump_json(events, exclude_none=True)
            )
        except (RedisError, OSError) as exc:
            log.warning("completion.announce_failed", error=repr(exc))


def _epoch_value(mark: str | bytes, replid: str | None) -> str:
    mark = mark.decode() if isinstance(mark, bytes) else mark
    return mark if replid is None else f"{mark} {replid}"


def _epoch_replid(epoch: bytes | str | None) -> str | None:
    """The replication id an epoch value records (``<time> <replid>``), if any."""
    if epoch is None:
        return None
    parts = (epoch.decode() if isinstance(epoch, bytes) else epoch).split()
    return parts[1] if len(parts) == 2 else None
