"""Idempotent writes of job outcomes. Each statement only moves a request forward
(pending → running → succeeded | failed), so a second delivery finds nothing to change."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import orjson

_STARTED = """
UPDATE requests SET status = 'running', started_at = now(), updated_at = now()
WHERE id = ANY($1::uuid[]) AND status = 'pending'
RETURNING id, user_id, status, results, error, updated_at, traceparent
"""

# Settle on success (the reservation becomes spent), refund on failure (it returns to the
# balance); one ledger row per movement. Users are locked in id order to keep concurrent
# consumers from deadlocking on each other.
_FINISHED = """
WITH outcome AS (
    SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[])
        AS t(id, status, results, error)
), done AS (
    UPDATE requests r
    SET status = o.status, results = o.results::jsonb, error = o.error,
        started_at = coalesce(r.started_at, now()), finished_at = now(), updated_at = now()
    FROM outcome o
    WHERE r.id = o.id AND r.status IN ('pending', 'running')
    RETURNING r.id, r.user_id, r.price, r.status, r.results, r.error, r.updated_at, r.traceparent
), money AS (
    SELECT user_id,
           coalesce(sum(price) FILTER (WHERE status = 'succeeded'), 0) AS settled,
           coalesce(sum(price) FILTER (WHERE status = 'failed'), 0) AS refunded
    FROM done GROUP BY user_id
), locked AS (
    SELECT u.id FROM users u JOIN money m ON m.user_id = u.id ORDER BY u.id FOR UPDATE OF u
), balances AS (
    UPDATE users u
    SET reserved = u.reserved - m.settled - m.refunded, balance = u.balance + m.refunded
    FROM money m, locked l
    WHERE u.id = m.user_id AND l.id = u.id
), ledger AS (
    INSERT INTO credit_ledger (user_id, request_id, kind, amount)
    SELECT user_id, id, CASE status WHEN 'succeeded' THEN 'settle' ELSE 'refund' END, price
    FROM done
)
SELECT id, user_id, status, results, error, updated_at, traceparent FROM done
"""


async def mark_started(
    pool: asyncpg.Pool[Any], request_ids: list[uuid.UUID]
) -> list[asyncpg.Record]:
    return await pool.fetch(_STARTED, request_ids)


async def record_outcomes(
    pool: asyncpg.Pool[Any],
    *,
    ids: list[uuid.UUID],
    statuses: list[str],
    results: list[list[Any] | None],
    errors: list[str | None],
) -> list[asyncpg.Record]:
    encoded = [None if r is None else orjson.dumps(r).decode() for r in results]
    return await pool.fetch(_FINISHED, ids, statuses, encoded, errors)
