"""The webhook statements of the API: endpoints and the one-off secret are written here;
deliveries and their attempts are only read (``libs.outbox`` queues them, a dispatcher sends
them). Every statement names the user: another user's rows are never seen."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

import asyncpg

from libs.db import PgConnection, PgPool

Db = PgPool | PgConnection

_ENDPOINT = """id, url, events, description, enabled, disabled_reason, failing_since,
    CASE WHEN previous_until > now() THEN previous_until END AS previous_secret_until,
    created_at, updated_at"""

_LIST = f"SELECT {_ENDPOINT} FROM webhook_endpoints WHERE user_id = $1 ORDER BY created_at, id"

_GET = f"SELECT {_ENDPOINT} FROM webhook_endpoints WHERE id = $1 AND user_id = $2"

# Endpoints are counted and created under this per-user lock, so that concurrent creations
# cannot pass the cap together.
_LOCK = """
SELECT pg_advisory_xact_lock(hashtextextended('webhook_endpoints:' || $1::uuid::text, 0))
"""

_COUNT = "SELECT count(*) FROM webhook_endpoints WHERE user_id = $1"

_INSERT = f"""
INSERT INTO webhook_endpoints (id, user_id, url, events, description, secret)
VALUES ($1, $2, $3, $4, $5, $6)
RETURNING {_ENDPOINT}, secret
"""

# Re-enabling (false to true) clears what the dispatcher recorded of its failures; disabling
# keeps the reason it was disabled for, or records its owner's.
_UPDATE = f"""
UPDATE webhook_endpoints
SET url = coalesce($3, url),
    events = coalesce($4, events),
    description = coalesce($5, description),
    enabled = coalesce($6, enabled),
    disabled_reason = CASE WHEN $6 AND NOT enabled THEN NULL
                           WHEN NOT $6 AND enabled THEN $7
                           ELSE disabled_reason END,
    failing_since = CASE WHEN $6 AND NOT enabled THEN NULL ELSE failing_since END,
    updated_at = now()
WHERE id = $1 AND user_id = $2
RETURNING {_ENDPOINT}
"""

_DELETE = "DELETE FROM webhook_endpoints WHERE id = $1 AND user_id = $2 RETURNING id"

_ROTATE = f"""
UPDATE webhook_endpoints
SET previous_secret = secret, previous_until = now() + make_interval(secs => $3),
    secret = $4, updated_at = now()
WHERE id = $1 AND user_id = $2
RETURNING {_ENDPOINT}, secret
"""

_SECRET = """created_at, updated_at,
    CASE WHEN previous_until > now() THEN previous_until END AS previous_secret_until"""

_GET_SECRET = f"SELECT {_SECRET} FROM webhook_secrets WHERE user_id = $1"

_HAS_SECRET = "SELECT EXISTS (SELECT 1 FROM webhook_secrets WHERE user_id = $1)"

# A first secret, or a rotation: the old one keeps signing until ``previous_until``. ``xmax``
# is 0 on a row this statement inserted.
_PUT_SECRET = f"""
INSERT INTO webhook_secrets AS s (user_id, secret) VALUES ($1, $2)
ON CONFLICT (user_id) DO UPDATE
SET previous_secret = s.secret, previous_until = now() + make_interval(secs => $3),
    secret = excluded.secret, updated_at = now()
RETURNING {_SECRET}, secret, xmax = 0 AS created
"""

_DELIVERY = """d.id, d.endpoint_id, d.url, d.request_id, d.event, d.payload, d.status,
    CASE WHEN d.status = 'pending' THEN d.next_attempt_at END AS next_attempt_at,
    d.last_status_code, d.last_error, d.delivered_at, d.created_at"""

_DELIVERIES = f"""
SELECT {_DELIVERY}
FROM webhook_deliveries d
WHERE d.user_id = $1
  AND ($2::uuid IS NULL OR d.endpoint_id = $2)
  AND ($3::uuid IS NULL OR d.request_id = $3)
  AND ($4::text IS NULL OR d.status = $4)
  AND ($5::timestamptz IS NULL OR (d.created_at, d.id) < ($5, $6::uuid))
ORDER BY d.created_at DESC, d.id DESC
LIMIT $7
"""

_DELIVERY_ONE = f"""
SELECT {_DELIVERY}
FROM webhook_deliveries d
WHERE d.id = $1 AND d.user_id = $2 AND ($3::uuid IS NULL OR d.endpoint_id = $3)
"""

_ATTEMPTS = """
SELECT delivery_id, n, at, status_code, latency_ms, error
FROM webhook_attempts WHERE delivery_id = ANY($1::uuid[])
ORDER BY delivery_id, n
"""


async def list_endpoints(db: Db, user_id: uuid.UUID) -> list[asyncpg.Record]:
    return await db.fetch(_LIST, user_id)


async def get_endpoint(db: Db, user_id: uuid.UUID, endpoint_id: uuid.UUID) -> asyncpg.Record | None:
    return await db.fetchrow(_GET, endpoint_id, user_id)


async def lock_endpoints(conn: PgConnection, user_id: uuid.UUID) -> None:
    """Hold the user's endpoints (for counting them) until the transaction ends."""
    await conn.execute(_LOCK, user_id)


async def count_endpoints(db: Db, user_id: uuid.UUID) -> int:
    count: int = await db.fetchval(_COUNT, user_id)
    return count


async def insert_endpoint(
    db: Db,
    *,
    user_id: uuid.UUID,
    url: str,
    events: Sequence[str],
    description: str,
    secret: str,
) -> asyncpg.Record:
    row = await db.fetchrow(_INSERT, uuid.uuid4(), user_id, url, list(events), description, secret)
    assert row is not None
    return row


async def update_endpoint(
    db: Db,
    user_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    *,
    url: str | None,
    events: Sequence[str] | None,
    description: str | None,
    enabled: bool | None,
    disabled_reason: str,
) -> asyncpg.Record | None:
    return await db.fetchrow(
        _UPDATE,
        endpoint_id,
        user_id,
        url,
        None if events is None else list(events),
        description,
        enabled,
        disabled_reason,
    )


async def delete_endpoint(db: Db, user_id: uuid.UUID, endpoint_id: uuid.UUID) -> bool:
    return await db.fetchval(_DELETE, endpoint_id, user_id) is not None


async def rotate_endpoint(
    db: Db, user_id: uuid.UUID, endpoint_id: uuid.UUID, *, secret: str, overlap_s: int
) -> asyncpg.Record | None:
    return await db.fetchrow(_ROTATE, endpoint_id, user_id, float(overlap_s), secret)


async def get_secret(db: Db, user_id: uuid.UUID) -> asyncpg.Record | None:
    return await db.fetchrow(_GET_SECRET, user_id)


async def has_secret(db: Db, user_id: uuid.UUID) -> bool:
    return bool(await db.fetchval(_HAS_SECRET, user_id))


async def put_secret(db: Db, user_id: uuid.UUID, *, secret: str, overlap_s: int) -> asyncpg.Record:
    row = await db.fetchrow(_PUT_SECRET, user_id, secret, float(overlap_s))
    assert row is not None
    return row


async def list_deliveries(
    db: Db,
    user_id: uuid.UUID,
    *,
    endpoint_id: uuid.UUID | None = None,
    request_id: uuid.UUID | None = None,
    status: str | None = None,
    before: tuple[datetime, uuid.UUID] | None = None,
    limit: int,
) -> list[asyncpg.Record]:
    """The user's deliveries, newest first, older than ``before`` (``created_at``, ``id``)."""
    return await db.fetch(
        _DELIVERIES,
        user_id,
        endpoint_id,
        request_id,
        status,
        before[0] if before else None,
        before[1] if before else None,
        limit,
    )


async def get_delivery(
    db: Db, user_id: uuid.UUID, delivery_id: uuid.UUID, *, endpoint_id: uuid.UUID | None = None
) -> asyncpg.Record | None:
    return await db.fetchrow(_DELIVERY_ONE, delivery_id, user_id, endpoint_id)


async def attempts_of(db: Db, delivery_ids: Sequence[uuid.UUID]) -> list[asyncpg.Record]:
    """The attempts of the deliveries ``delivery_ids`` (already known to be the caller's)."""
    if not delivery_ids:
        return []
    return await db.fetch(_ATTEMPTS, list(delivery_ids))
