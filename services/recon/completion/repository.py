"""SQL of the completion loop. Ages use the database clock, never this host's."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from libs.db import PgConnection
from libs.outcomes import redrive as redrive_sql
from libs.outcomes.redrive import Locked, OpenStep, open_steps, redrive, redrive_step

__all__ = [
    "Candidate",
    "Locked",
    "OpenStep",
    "database_now",
    "lock_unchanged",
    "lock_unchanged_deal",
    "open_steps",
    "redrive",
    "redrive_step",
    "stuck_requests",
]

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


@dataclass(frozen=True, slots=True)
class Candidate:
    id: uuid.UUID
    updated_at: datetime
    deal: bool = False
    """A deal's request: its steps are re-driven, each with its own attempts."""


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
    return await redrive_sql.lock_request(conn, candidate.id, updated_at=candidate.updated_at)


async def lock_unchanged_deal(conn: PgConnection, candidate: Candidate) -> bool:
    """Lock a deal's request for this transaction; False if it moved or another holds it."""
    return await redrive_sql.lock_deal(conn, candidate.id, updated_at=candidate.updated_at)
