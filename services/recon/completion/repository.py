"""SQL of the completion loop. Ages use the database clock, never this host's."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from asyncpg import Record

from libs import outbox
from libs.db import PgConnection

# A request's job timeout (``params.job_timeout_s`` of its offer over its handler), when a number.
_JOB_TIMEOUT = """CASE WHEN jsonb_typeof((h.params || o.params) -> 'job_timeout_s') = 'number'
     THEN ((h.params || o.params) ->> 'job_timeout_s')::float8 END"""

# A request is a candidate once untouched past its deadline: its job timeout plus a grace ($6),
# or the stuck age ($2) when that is sooner or its offer names no timeout; or, during a Redis
# data-loss sweep, when touched before $1. ``soonest``, the earliest any offer allows, bounds
# the scan of the index of unfinished requests. Keyset pagination on (updated_at, id): a sweep
# walks every candidate once even when some of them are left alone (live), and what it
# re-drives moves past its end (updated_at = now()).
_CANDIDATES = f"""
WITH soonest AS (
    SELECT least($2::float8, min({_JOB_TIMEOUT}) + $6) AS s
    FROM offers o JOIN handlers h ON h.id = o.handler_id
)
SELECT r.id, r.updated_at, r.deal_id IS NOT NULL AS deal
FROM requests r LEFT JOIN offers o ON o.id = r.offer_id LEFT JOIN handlers h ON h.id = o.handler_id
WHERE r.status IN ('pending', 'running')
  AND r.updated_at < coalesce($1::timestamptz,
                              now() - make_interval(secs => (SELECT s FROM soonest)))
  AND ($1::timestamptz IS NOT NULL
       OR r.updated_at < now() - make_interval(secs => least($2::float8, {_JOB_TIMEOUT} + $6)))
  AND (r.updated_at, r.id) > ($3::timestamptz, $4::uuid)
  AND NOT EXISTS (SELECT 1 FROM outbox ob WHERE ob.request_id = r.id)
ORDER BY r.updated_at, r.id
LIMIT $5
"""

_NOW = "SELECT now()"
_START = (datetime.min.replace(tzinfo=UTC), uuid.UUID(int=0))

# Locks the request only if it is exactly as the candidate scan saw it: another replica that
# got there first, or any progress meanwhile, changed updated_at (or holds the lock).
_LOCK = """
SELECT r.id, r.attempt, r.prompt, r.traceparent, o.handler_id, o.create_qty,
       h.params || o.params AS params, r.messages, r.options
FROM requests r JOIN offers o ON o.id = r.offer_id JOIN handlers h ON h.id = o.handler_id
WHERE r.id = $1 AND r.updated_at = $2 AND r.status IN ('pending', 'running')
  AND NOT EXISTS (SELECT 1 FROM outbox ob WHERE ob.request_id = r.id)
FOR UPDATE OF r SKIP LOCKED
"""

_REDRIVE = f"""
WITH bumped AS (
    UPDATE requests SET attempt = $2, updated_at = now() WHERE id = $1
    RETURNING id AS request_id, $3::text AS payload
), {outbox.queue("bumped")}
SELECT 1
"""


_LOCK_DEAL = """
SELECT r.id FROM requests r
WHERE r.id = $1 AND r.updated_at = $2 AND r.status IN ('pending', 'running')
  AND r.deal_id IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM outbox ob WHERE ob.request_id = r.id)
FOR UPDATE OF r SKIP LOCKED
"""

# A deal's steps that were queued (they have a prompt) and have not ended: those a worker lost.
_OPEN_STEPS = """
SELECT s.idx, s.attempt, s.prompt, r.traceparent, o.handler_id, o.create_qty,
       h.params || o.params AS params
FROM request_steps s JOIN requests r ON r.id = s.request_id
JOIN offers o ON o.id = s.offer_id JOIN handlers h ON h.id = o.handler_id
WHERE s.request_id = $1 AND s.prompt IS NOT NULL AND s.status IN ('pending', 'running')
ORDER BY s.idx
"""

_REDRIVE_STEP = f"""
WITH bumped AS (
    UPDATE request_steps SET attempt = $3, updated_at = now()
    WHERE request_id = $1 AND idx = $2 RETURNING request_id, $4::text AS payload
), touched AS (
    UPDATE requests SET updated_at = now() WHERE id = $1
), {outbox.queue("bumped")}
SELECT 1
"""


@dataclass(frozen=True, slots=True)
class Candidate:
    id: uuid.UUID
    updated_at: datetime
    deal: bool = False
    """A deal's request: its steps are re-driven, each with its own attempts."""


@dataclass(frozen=True, slots=True)
class OpenStep:
    idx: int
    attempt: int
    traceparent: str | None
    run: outbox.Run


@dataclass(frozen=True, slots=True)
class Locked:
    id: uuid.UUID
    attempt: int
    traceparent: str | None
    run: outbox.Run


def _run(row: Record) -> outbox.Run:
    chat = {"messages": row["messages"], "options": row["options"]} if "messages" in row else {}
    return outbox.Run(row["handler_id"], row["prompt"], row["params"], row["create_qty"], **chat)


async def stuck_requests(
    conn: PgConnection,
    *,
    limit: int,
    older_than_s: float = 0.0,
    grace_s: float = 0.0,
    before: datetime | None = None,
    after: Candidate | None = None,
) -> list[Candidate]:
    """Unfinished requests with no outbox row, untouched past their deadline (their job
    timeout plus ``grace_s``, at most ``older_than_s``), or since ``before``; oldest first,
    from just past ``after``."""
    start = (after.updated_at, after.id) if after is not None else _START
    rows = await conn.fetch(_CANDIDATES, before, older_than_s, *start, limit, grace_s)
    return [Candidate(id=r["id"], updated_at=r["updated_at"], deal=r["deal"]) for r in rows]


async def database_now(conn: PgConnection) -> datetime:
    now: datetime = await conn.fetchval(_NOW)
    return now


async def lock_unchanged(conn: PgConnection, candidate: Candidate) -> Locked | None:
    """The request, locked for this transaction; None if it moved or another holds it."""
    row = await conn.fetchrow(_LOCK, candidate.id, candidate.updated_at)
    if row is None:
        return None
    return Locked(row["id"], row["attempt"], row["traceparent"], _run(row))


async def redrive(conn: PgConnection, request: Locked) -> None:
    """Record the request's next attempt and queue its task, in the caller's transaction."""
    payload = outbox.redrive(
        request.run,
        request_id=request.id,
        traceparent=request.traceparent,
        attempt=request.attempt + 1,
    )
    await conn.execute(_REDRIVE, request.id, request.attempt + 1, payload)


async def lock_unchanged_deal(conn: PgConnection, candidate: Candidate) -> bool:
    """Lock a deal's request for this transaction; False if it moved or another holds it."""
    return await conn.fetchval(_LOCK_DEAL, candidate.id, candidate.updated_at) is not None


async def open_steps(conn: PgConnection, request_id: uuid.UUID) -> list[OpenStep]:
    rows = await conn.fetch(_OPEN_STEPS, request_id)
    return [OpenStep(r["idx"], r["attempt"], r["traceparent"], _run(r)) for r in rows]


async def redrive_step(conn: PgConnection, request_id: uuid.UUID, step: OpenStep) -> None:
    """Record the step's next attempt and queue its task, in the caller's transaction."""
    payload = outbox.redrive(
        step.run,
        request_id=request_id,
        traceparent=step.traceparent,
        attempt=step.attempt + 1,
        step=step.idx,
    )
    await conn.execute(_REDRIVE_STEP, request_id, step.idx, step.attempt + 1, payload)
