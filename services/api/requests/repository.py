from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import orjson

# One statement, so one implicit transaction and one round trip: insert the request, reserve
# its price, record the reservation, and add the outbox row. A duplicate id inserts nothing and
# so charges nothing. When the balance is short, ``charge`` is empty and the ledger row gets a
# NULL user_id: the NOT NULL violation aborts the whole statement, leaving nothing written.
_SUBMIT = """
WITH ins AS (
    INSERT INTO requests (id, user_id, offer_id, inputs, prompt, price, traceparent,
                          idempotency_key)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $10)
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

# The same effect for many submissions in one round trip and one commit. Only what it can decide
# cheaply is decided here: requests that are new and affordable (in arrival order per user) are
# created; anything else (a duplicate, a short balance) is left for the one-request statement
# above, which gives the exact answer.
_SUBMIT_MANY = """
WITH input AS (
    SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[],
                         $6::bigint[], $7::text[], $8::text[], $10::text[])
        WITH ORDINALITY
        AS t(id, user_id, offer_id, inputs, prompt, price, traceparent, payload, idempotency_key,
             ord)
), fresh AS (
    SELECT DISTINCT ON (i.id) i.* FROM input i
    WHERE NOT EXISTS (SELECT 1 FROM requests r WHERE r.id = i.id)
    ORDER BY i.id, i.ord
), wallets AS (
    SELECT u.id, u.balance FROM users u
    WHERE u.id IN (SELECT user_id FROM fresh)
    ORDER BY u.id FOR UPDATE
), affordable AS (
    SELECT f.* FROM (
        SELECT *, sum(price) OVER (PARTITION BY user_id ORDER BY ord) AS running FROM fresh
    ) f JOIN wallets w ON w.id = f.user_id
    WHERE f.running <= w.balance
), ins AS (
    INSERT INTO requests (id, user_id, offer_id, inputs, prompt, price, traceparent,
                          idempotency_key)
    SELECT id, user_id, offer_id, inputs::jsonb, prompt, price, traceparent, idempotency_key
    FROM affordable
    ON CONFLICT (id) DO NOTHING
    RETURNING id, user_id, price
), charge AS (
    UPDATE users u SET balance = u.balance - s.total, reserved = u.reserved + s.total
    FROM (SELECT user_id, sum(price) AS total FROM ins GROUP BY user_id) s
    WHERE u.id = s.user_id
), ledger AS (
    INSERT INTO credit_ledger (user_id, request_id, kind, amount)
    SELECT user_id, id, 'reserve', price FROM ins
), outbox AS (
    INSERT INTO outbox (stream, request_id, payload)
    SELECT $9, a.id, a.payload FROM ins JOIN affordable a ON a.id = ins.id
)
SELECT id FROM ins
"""

_STATUS = "SELECT status, price FROM requests WHERE id = $1 AND user_id = $2"

_STATE = (
    "SELECT status, price, attempt, deal_id IS NOT NULL AS deal FROM requests "
    "WHERE id = $1 AND user_id = $2"
)

# Pending requests for the same handler submitted before this one (through the partial index of
# pending requests by creation time).
_AHEAD = """
WITH me AS (
    SELECT r.id, r.created_at, o.handler_id FROM requests r JOIN offers o ON o.id = r.offer_id
    WHERE r.id = $1
)
SELECT count(*) FROM requests r JOIN offers o ON o.id = r.offer_id, me
WHERE r.status = 'pending' AND (r.created_at, r.id) < (me.created_at, me.id)
  AND o.handler_id = me.handler_id
"""

# A deal's request has no offer: it reads as service ``deal``, action <the deal's slug>.
_VIEW_COLUMNS = """
r.id, coalesce(o.service, 'deal') AS service, coalesce(o.action, d.slug) AS action, r.deal_id,
r.status, r.inputs, r.results, r.error, r.usage, r.price, r.attempt,
r.created_at, r.updated_at, r.started_at, r.finished_at
"""

_GET = f"""
SELECT {_VIEW_COLUMNS} FROM requests r LEFT JOIN offers o ON o.id = r.offer_id
LEFT JOIN deals d ON d.id = r.deal_id
WHERE r.id = $1 AND r.user_id = $2
"""

_LIST = f"""
SELECT {_VIEW_COLUMNS} FROM requests r LEFT JOIN offers o ON o.id = r.offer_id
LEFT JOIN deals d ON d.id = r.deal_id
WHERE r.user_id = $1
  AND ($2::timestamptz IS NULL OR (r.created_at, r.id) < ($2, $3))
  AND ($4::text IS NULL OR r.status = $4)
ORDER BY r.created_at DESC, r.id DESC
LIMIT $5
"""


_UNFINISHED = f"""
SELECT {_VIEW_COLUMNS} FROM requests r LEFT JOIN offers o ON o.id = r.offer_id
LEFT JOIN deals d ON d.id = r.deal_id
WHERE r.user_id = $1 AND r.status IN ('pending', 'running')
ORDER BY r.created_at
LIMIT $2
"""

_CHANGED_SINCE = f"""
SELECT {_VIEW_COLUMNS} FROM requests r LEFT JOIN offers o ON o.id = r.offer_id
LEFT JOIN deals d ON d.id = r.deal_id
WHERE r.user_id = $1 AND r.updated_at >= $2
ORDER BY r.updated_at
LIMIT $3
"""


class ShortBalance(Exception):
    pass


@dataclass(frozen=True, slots=True)
class NewRequest:
    id: uuid.UUID
    user_id: uuid.UUID
    offer_id: uuid.UUID
    inputs: dict[str, str]
    prompt: str
    price: int
    traceparent: str
    payload: str
    """The task message, as the relay will publish it."""
    idempotency_key: str | None = None


IDEMPOTENCY_INDEX = "ix_requests_user_idempotency_key"


class KeyReused(Exception):
    """The user's ``Idempotency-Key`` already names another request (other inputs or target)."""


@contextmanager
def submission_errors() -> Iterator[None]:
    """What a submit statement's violations mean: a short balance (the ledger row's NULL user)
    is ``ShortBalance``, a second request under one Idempotency-Key is ``KeyReused``."""
    try:
        yield
    except asyncpg.NotNullViolationError as exc:
        if exc.table_name == "credit_ledger" and exc.column_name == "user_id":
            raise ShortBalance from exc
        raise
    except asyncpg.UniqueViolationError as exc:
        if exc.constraint_name == IDEMPOTENCY_INDEX:
            raise KeyReused from exc
        raise


async def insert_submission(pool: asyncpg.Pool[Any], new: NewRequest, *, stream: str) -> bool:
    """True when the request was created; False when it already existed. Raises
    ``ShortBalance``, having written nothing, when the user cannot pay for it."""
    with submission_errors():
        created = await pool.fetchval(
            _SUBMIT,
            new.id,
            new.user_id,
            new.offer_id,
            new.inputs,
            new.prompt,
            new.price,
            new.traceparent,
            stream,
            new.payload,
            new.idempotency_key,
        )
    return bool(created)


async def insert_submissions(
    pool: asyncpg.Pool[Any], batch: list[NewRequest], *, stream: str
) -> set[uuid.UUID]:
    """The ids of the requests of ``batch`` created, all in one transaction."""
    rows = await pool.fetch(
        _SUBMIT_MANY,
        [n.id for n in batch],
        [n.user_id for n in batch],
        [n.offer_id for n in batch],
        [orjson.dumps(n.inputs).decode() for n in batch],
        [n.prompt for n in batch],
        [n.price for n in batch],
        [n.traceparent for n in batch],
        [n.payload for n in batch],
        stream,
        [n.idempotency_key for n in batch],
    )
    return {row["id"] for row in rows}


async def count_unfinished(pool: asyncpg.Pool[Any], user_id: uuid.UUID, *, limit: int) -> int:
    """How many of the user's requests are pending or running, counted up to ``limit``."""
    count: int = await pool.fetchval(
        "SELECT count(*) FROM (SELECT 1 FROM requests WHERE user_id = $1 "
        "AND status IN ('pending', 'running') LIMIT $2) s",
        user_id,
        limit,
    )
    return count


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


async def unfinished_views(
    pool: asyncpg.Pool[Any], user_id: uuid.UUID, *, limit: int
) -> list[asyncpg.Record]:
    """The user's pending and running requests, oldest first."""
    return await pool.fetch(_UNFINISHED, user_id, limit)


async def views_changed_since(
    pool: asyncpg.Pool[Any], user_id: uuid.UUID, since: datetime, *, limit: int
) -> list[asyncpg.Record]:
    """The user's requests whose state changed at or after ``since``, in order of change."""
    return await pool.fetch(_CHANGED_SINCE, user_id, since, limit)


async def get_state(
    pool: asyncpg.Pool[Any], request_id: uuid.UUID, user_id: uuid.UUID
) -> asyncpg.Record | None:
    """The request's status, price and current attempt, if it is this user's."""
    return await pool.fetchrow(_STATE, request_id, user_id)


async def refunded(pool: asyncpg.Pool[Any], request_id: uuid.UUID) -> int:
    """Credits the request's ledger returned to the balance."""
    return int(
        await pool.fetchval(
            "SELECT coalesce(sum(amount), 0) FROM credit_ledger "
            "WHERE request_id = $1 AND kind = 'refund'",
            request_id,
        )
    )


async def pending_ahead(pool: asyncpg.Pool[Any], request_id: uuid.UUID) -> int:
    """How many pending requests for the same handler were submitted before this one."""
    return int(await pool.fetchval(_AHEAD, request_id) or 0)
