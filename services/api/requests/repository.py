from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import asyncpg

# One statement, so one implicit transaction and one round trip: insert the request, reserve
# its price, record the reservation, and add the outbox row. A duplicate id inserts nothing and
# so charges nothing. When the balance is short, ``charge`` is empty and the ledger row gets a
# NULL user_id: the NOT NULL violation aborts the whole statement, leaving nothing written.
_SUBMIT = """
WITH ins AS (
    INSERT INTO requests (id, user_id, offer_id, inputs, prompt, price, traceparent)
    VALUES ($1, $2, $3, $4, $5, $6, $7)
    ON CONFLICT (id) DO NOTHING
    RETURNING id
), charge AS (
    UPDATE users SET balance = balance - $6, reserved = reserved + $6
    WHERE id = $2 AND balance >= $6 AND EXISTS (SELECT 1 FROM ins)
    RETURNING id
), ledger AS (
    INSERT INTO credit_ledger (user_id, request_id, kind, amount)
    SELECT (SELECT id FROM charge), ins.id, 'reserve', $6 FROM ins
), outbox AS (
    INSERT INTO outbox (stream, request_id, payload)
    SELECT $8, ins.id, $9 FROM ins
)
SELECT EXISTS (SELECT 1 FROM ins)
"""

_STATUS = "SELECT status, price FROM requests WHERE id = $1 AND user_id = $2"

_VIEW_COLUMNS = """
r.id, o.service, o.action, r.status, r.inputs, r.results, r.error, r.price, r.attempt,
r.created_at, r.updated_at, r.started_at, r.finished_at
"""

_GET = f"""
SELECT {_VIEW_COLUMNS} FROM requests r JOIN offers o ON o.id = r.offer_id
WHERE r.id = $1 AND r.user_id = $2
"""

_LIST = f"""
SELECT {_VIEW_COLUMNS} FROM requests r JOIN offers o ON o.id = r.offer_id
WHERE r.user_id = $1
  AND ($2::timestamptz IS NULL OR (r.created_at, r.id) < ($2, $3))
  AND ($4::text IS NULL OR r.status = $4)
ORDER BY r.created_at DESC, r.id DESC
LIMIT $5
"""


class ShortBalance(Exception):
    pass


async def insert_submission(
    pool: asyncpg.Pool[Any],
    *,
    request_id: uuid.UUID,
    user_id: uuid.UUID,
    offer_id: uuid.UUID,
    inputs: dict[str, str],
    prompt: str,
    price: int,
    traceparent: str,
    stream: str,
    payload: str,
) -> bool:
    """True when the request was created; False when it already existed."""
    try:
        created = await pool.fetchval(
            _SUBMIT,
            request_id,
            user_id,
            offer_id,
            inputs,
            prompt,
            price,
            traceparent,
            stream,
            payload,
        )
    except asyncpg.NotNullViolationError as exc:
        if exc.table_name == "credit_ledger" and exc.column_name == "user_id":
            raise ShortBalance from exc
        raise
    return bool(created)


async def get_status(
    pool: asyncpg.Pool[Any], request_id: uuid.UUID, user_id: uuid.UUID
) -> asyncpg.Record | None:
    return await pool.fetchrow(_STATUS, request_id, user_id)


async def get_view(
    pool: asyncpg.Pool[Any], request_id: uuid.UUID, user_id: uuid.UUID
) -> asyncpg.Record | None:
    return await pool.fetchrow(_GET, request_id, user_id)


async def list_views(
    pool: asyncpg.Pool[Any],
    user_id: uuid.UUID,
    *,
    before: tuple[datetime, uuid.UUID] | None,
    status: str | None,
    limit: int,
) -> list[asyncpg.Record]:
    created_at, last_id = before if before else (None, None)
    return await pool.fetch(_LIST, user_id, created_at, last_id, status, limit)
