"""The SQL of the dispatcher: claim due deliveries under a lease, record each attempt and its
outcome, keep the endpoints' health.

Locks are always taken endpoint first, delivery second (claims skip what is locked), so that
recording an attempt never deadlocks with another dispatcher failing the same endpoint's
deliveries, nor with the API deleting the endpoint.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from libs.contracts.webhooks import PING_EVENT
from libs.db import PgConnection
from services.dispatcher.delivery.schemas import Attempt, Claimed

ENDPOINT_DISABLED = "endpoint disabled"

# A due delivery whose endpoint is disabled is failed instead of claimed (a ping still goes: it
# is how an owner sees a disabled endpoint answer again). A claimed one's next_attempt_at moves
# to the end of its lease: if its dispatcher dies, that is when it is tried again.
_CLAIM = f"""
WITH due AS (
    SELECT d.id, coalesce(NOT e.enabled AND d.event <> '{PING_EVENT}', false) AS stopped
    FROM webhook_deliveries d LEFT JOIN webhook_endpoints e ON e.id = d.endpoint_id
    WHERE d.status = 'pending' AND d.next_attempt_at <= now()
      AND (d.locked_until IS NULL OR d.locked_until < now())
    ORDER BY d.next_attempt_at
    LIMIT $1
    FOR UPDATE OF d SKIP LOCKED
), taken AS (
    UPDATE webhook_deliveries d
    SET attempts = d.attempts + CASE WHEN due.stopped THEN 0 ELSE 1 END,
        status = CASE WHEN due.stopped THEN 'failed' ELSE 'pending' END,
        last_error = CASE WHEN due.stopped THEN '{ENDPOINT_DISABLED}' ELSE d.last_error END,
        locked_until = CASE WHEN due.stopped THEN NULL
                            ELSE now() + make_interval(secs => $2) END,
        next_attempt_at = CASE WHEN due.stopped THEN d.next_attempt_at
                               ELSE now() + make_interval(secs => $2) END
    FROM due
    WHERE d.id = due.id
    RETURNING d.id, d.user_id, d.endpoint_id, d.url, d.request_id, d.event, d.payload,
              d.attempts, due.stopped
)
SELECT t.id, t.user_id, t.endpoint_id, t.request_id, t.event, t.payload, t.attempts, t.stopped,
       coalesce(e.url, t.url) AS url,
       coalesce(e.secret, s.secret) AS secret,
       CASE WHEN t.endpoint_id IS NOT NULL
            THEN CASE WHEN e.previous_until > now() THEN e.previous_secret END
            ELSE CASE WHEN s.previous_until > now() THEN s.previous_secret END
       END AS previous_secret
FROM taken t
LEFT JOIN webhook_endpoints e ON e.id = t.endpoint_id
LEFT JOIN webhook_secrets s ON t.endpoint_id IS NULL AND s.user_id = t.user_id
"""


async def claim(conn: PgConnection, *, limit: int, lease_s: float) -> tuple[list[Claimed], int]:
    """Lease up to ``limit`` due deliveries (their attempt counted now); returns them, and how
    many due ones were failed instead because their endpoint is disabled."""
    claimed: list[Claimed] = []
    stopped = 0
    for row in await conn.fetch(_CLAIM, limit, lease_s):
        if row["stopped"]:
            stopped += 1
            continue
        secrets = tuple(s for s in (row["secret"], row["previous_secret"]) if s)
        claimed.append(
            Claimed(
                id=row["id"],
                user_id=row["user_id"],
                endpoint_id=row["endpoint_id"],
                request_id=row["request_id"],
                event=row["event"],
                url=row["url"],
                payload=row["payload"],
                attempt=row["attempts"],
                secrets=secrets,
            )
        )
    return claimed, stopped


_NEXT_DUE = """
SELECT extract(epoch FROM min(next_attempt_at) - now())::float8
FROM webhook_deliveries WHERE status = 'pending'
"""


async def seconds_to_next_due(conn: PgConnection) -> float | None:
    """Seconds until the earliest pending delivery falls due (or its lease ends): negative when
    one is due already, None when nothing is pending."""
    seconds: float | None = await conn.fetchval(_NEXT_DUE)
    return seconds


_LOCK_ENDPOINT = "SELECT 1 FROM webhook_endpoints WHERE id = $1 FOR NO KEY UPDATE"
# ``round``: this attempt's place among those since the retries began (a redelivery starts a
# new round, and the backoff over again).
_LOCK_DELIVERY = """
SELECT d.attempts, d.status, extract(epoch FROM now() - d.retry_from)::float8 AS elapsed,
       (SELECT count(*) FROM webhook_attempts a
        WHERE a.delivery_id = d.id AND a.at >= d.retry_from)::int + 1 AS round
FROM webhook_deliveries d WHERE d.id = $1 FOR NO KEY UPDATE OF d
"""
_ATTEMPT = """
INSERT INTO webhook_attempts (delivery_id, n, at, status_code, latency_ms, error)
VALUES ($1, $2, now() - make_interval(secs => $3), $4, $3 * 1000, $5)
ON CONFLICT (delivery_id, n) DO NOTHING
"""
_DELIVERED = """
UPDATE webhook_deliveries
SET status = 'delivered', delivered_at = now(), locked_until = NULL,
    last_attempt_at = now(), last_status_code = $2, last_error = NULL
WHERE id = $1
"""
_NOT_DELIVERED = """
UPDATE webhook_deliveries
SET status = $2, next_attempt_at = CASE WHEN $2 = 'pending'
                                        THEN now() + make_interval(secs => $3)
                                        ELSE now() END,
    locked_until = NULL, last_attempt_at = now(), last_status_code = $4, last_error = $5
WHERE id = $1
"""


@dataclass(frozen=True, slots=True)
class Locked:
    attempts: int
    """Its attempt number now (another than the claim's: a newer attempt has it)."""
    status: str
    elapsed_s: float
    """Seconds since its retries began (the event, or its redelivery)."""
    round: int
    """This attempt's place since then (1 for the first)."""


async def lock(conn: PgConnection, claimed: Claimed) -> Locked | None:
    """Lock the delivery (its endpoint first) for recording; None if it is gone."""
    if claimed.endpoint_id is not None:
        await conn.fetchval(_LOCK_ENDPOINT, claimed.endpoint_id)
    row = await conn.fetchrow(_LOCK_DELIVERY, claimed.id)
    if row is None:
        return None
    return Locked(row["attempts"], row["status"], row["elapsed"], row["round"])


async def insert_attempt(conn: PgConnection, claimed: Claimed, attempt: Attempt) -> None:
    await conn.execute(
        _ATTEMPT,
        claimed.id,
        claimed.attempt,
        attempt.latency_s,
        attempt.status_code,
        attempt.error,
    )


async def mark_delivered(conn: PgConnection, delivery_id: uuid.UUID, status_code: int) -> None:
    await conn.execute(_DELIVERED, delivery_id, status_code)


async def mark_not_delivered(
    conn: PgConnection,
    delivery_id: uuid.UUID,
    attempt: Attempt,
    *,
    retry_in_s: float | None,
) -> None:
    """Schedule the next attempt in ``retry_in_s`` seconds, or (None) give the delivery up."""
    status = "failed" if retry_in_s is None else "pending"
    await conn.execute(
        _NOT_DELIVERED,
        delivery_id,
        status,
        retry_in_s or 0.0,
        attempt.status_code,
        attempt.error,
    )


_HEALTHY = """
UPDATE webhook_endpoints SET failing_since = NULL WHERE id = $1 AND failing_since IS NOT NULL
"""
_FAILING = """
UPDATE webhook_endpoints SET failing_since = coalesce(failing_since, now())
WHERE id = $1
RETURNING enabled, extract(epoch FROM now() - failing_since)::float8 AS failing_for
"""
_DISABLE = """
UPDATE webhook_endpoints SET enabled = false, disabled_reason = $2, updated_at = now()
WHERE id = $1 AND enabled
"""
_STOP_PENDING = f"""
UPDATE webhook_deliveries
SET status = 'failed', last_error = '{ENDPOINT_DISABLED}', locked_until = NULL
WHERE endpoint_id = $1 AND status = 'pending'
"""


async def endpoint_succeeded(conn: PgConnection, endpoint_id: uuid.UUID) -> None:
    await conn.execute(_HEALTHY, endpoint_id)


async def endpoint_failed(conn: PgConnection, endpoint_id: uuid.UUID) -> tuple[bool, float]:
    """Mark the endpoint failing (since now, unless it already was); returns whether it is
    enabled and for how many seconds it has been failing."""
    row = await conn.fetchrow(_FAILING, endpoint_id)
    if row is None:
        return False, 0.0
    return row["enabled"], row["failing_for"]


async def disable_endpoint(conn: PgConnection, endpoint_id: uuid.UUID, *, reason: str) -> int:
    """Disable the endpoint and fail its pending deliveries; returns how many were failed, or
    -1 if it was disabled already."""
    if await conn.execute(_DISABLE, endpoint_id, reason) != "UPDATE 1":
        return -1
    status: str = await conn.execute(_STOP_PENDING, endpoint_id)
    return int(status.split()[-1])
