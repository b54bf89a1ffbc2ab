"""Expiry: a request whose offer has an ``expiration`` is kept that many seconds (by the database
clock) and then reads ``expired``, its results purged.

- A request that ended counts from its end: its results (and its steps') are purged; nothing
  moves, since what was delivered was settled and what failed was refunded.
- A request still pending or running counts from its creation: it expired before delivery, so
  what was not delivered is refunded (the whole price, or the shares of a deal's unfinished
  steps), one ledger row each, and a late result changes nothing.

A deal's request expires after the shortest ``expiration`` among its steps' offers. Requests are
taken in batches with ``FOR UPDATE SKIP LOCKED``, so recon replicas never expire one twice; the
refunds go through ``libs.ledger``. Each request that expires queues its ``request.expired``
webhook events (``libs.outbox``) and deletes its files, inputs and results (``libs.files``), in
the same statement.
"""

from __future__ import annotations

import asyncpg

from libs import outbox
from libs.db import PgConnection
from libs.files import expiry as expired_files
from libs.ledger import movements as ledger

_EXPIRE_OFFER_REQUESTS = f"""
WITH due AS (
    SELECT r.id, r.status FROM requests r JOIN offers o ON o.id = r.offer_id
    WHERE o.expiration IS NOT NULL AND r.status <> 'expired'
      AND coalesce(r.finished_at, r.created_at) < now() - make_interval(secs => o.expiration)
    ORDER BY r.created_at
    LIMIT $1
    FOR UPDATE OF r SKIP LOCKED
), expired AS (
    UPDATE requests r
    SET status = 'expired', results = NULL, updated_at = now(),
        finished_at = coalesce(r.finished_at, now()),
        error = CASE WHEN due.status IN ('pending', 'running') THEN 'expired before delivery'
                     ELSE r.error END
    FROM due WHERE r.id = due.id
    RETURNING r.id, r.user_id, r.price, due.status AS was, r.status, r.results, r.error,
              r.updated_at, r.traceparent, r.usage, r.created_at, r.finished_at
), endings AS (
    SELECT user_id, id AS request_id, NULL::int AS step, status, created_at, finished_at
    FROM expired
), {outbox.events("endings")}, {expired_files.forget("expired")}, refunds AS (
    SELECT user_id, id AS request_id, NULL::int AS step, 'refund' AS kind, price AS amount
    FROM expired WHERE was IN ('pending', 'running')
), {ledger.apply("refunds")}
SELECT id, user_id, status, results, error, updated_at, traceparent, usage, false AS unseen_start
FROM expired
"""

_EXPIRE_DEAL_REQUESTS = f"""
WITH due AS (
    SELECT r.id, r.user_id, r.status FROM requests r,
        LATERAL (SELECT min(o.expiration) AS seconds
                 FROM request_steps s JOIN offers o ON o.id = s.offer_id
                 WHERE s.request_id = r.id) e
    WHERE r.deal_id IS NOT NULL AND r.status <> 'expired' AND e.seconds IS NOT NULL
      AND coalesce(r.finished_at, r.created_at) < now() - make_interval(secs => e.seconds)
    ORDER BY r.created_at
    LIMIT $1
    FOR UPDATE OF r SKIP LOCKED
), before AS (
    SELECT s.request_id, s.idx, s.status, s.price, due.user_id
    FROM request_steps s JOIN due ON due.id = s.request_id
), steps AS (
    UPDATE request_steps s
    SET status = 'expired', results = NULL, output = NULL, updated_at = now(),
        finished_at = coalesce(s.finished_at, now()),
        error = CASE WHEN b.status IN ('pending', 'running') THEN 'expired before delivery'
                     ELSE s.error END
    FROM before b WHERE s.request_id = b.request_id AND s.idx = b.idx
    RETURNING s.request_id, s.idx, s.price, b.status AS was, b.user_id
), refunds AS (
    SELECT user_id, request_id, idx AS step, 'refund' AS kind, price AS amount
    FROM steps WHERE was IN ('pending', 'running')
), {ledger.apply("refunds")}, expired AS (
    UPDATE requests r
    SET status = 'expired', results = NULL, updated_at = now(),
        finished_at = coalesce(r.finished_at, now()),
        error = CASE WHEN due.status IN ('pending', 'running') THEN 'expired before delivery'
                     ELSE r.error END
    FROM due WHERE r.id = due.id
    RETURNING r.id, r.user_id, r.status, r.results, r.error, r.updated_at, r.traceparent, r.usage,
              r.created_at, r.finished_at
), endings AS (
    SELECT user_id, id AS request_id, NULL::int AS step, status, created_at, finished_at
    FROM expired
), {outbox.events("endings")}, {expired_files.forget("expired")}
SELECT id, user_id, status, results, error, updated_at, traceparent, usage, false AS unseen_start
FROM expired
"""


async def expire_due(conn: PgConnection, *, limit: int) -> list[asyncpg.Record]:
    """Expire up to ``limit`` single-offer requests and ``limit`` deal requests whose time has
    come, in the caller's transaction; returns their new state (as ``record_outcomes`` does)."""
    rows = await conn.fetch(_EXPIRE_OFFER_REQUESTS, limit)
    return rows + await conn.fetch(_EXPIRE_DEAL_REQUESTS, limit)
