"""Webhook endpoints, deliveries and attempts written straight into Postgres, as the API and the
dispatcher leave them, with their clocks moved back."""

import uuid
from typing import Any

import asyncpg

RECEIVER_URL = "https://receiver.example/hooks/zq-secret-path"
ONE_OFF_URL = "https://one-off.example/callback/zq-other-path"


async def endpoint(
    pool: "asyncpg.Pool[Any]", user_id: uuid.UUID, *, enabled: bool = True
) -> uuid.UUID:
    endpoint_id = uuid.uuid4()
    await pool.execute(
        """INSERT INTO webhook_endpoints (id, user_id, url, events, secret, enabled,
                                          disabled_reason)
           VALUES ($1, $2, $3, '{request.succeeded}', 'whsec_x', $4,
                   CASE WHEN $4 THEN NULL ELSE 'failing for 3 days' END)""",
        endpoint_id,
        user_id,
        RECEIVER_URL,
        enabled,
    )
    return endpoint_id


async def disable(pool: "asyncpg.Pool[Any]", endpoint_id: uuid.UUID) -> None:
    await pool.execute(
        "UPDATE webhook_endpoints SET enabled = false, disabled_reason = '410 Gone' WHERE id = $1",
        endpoint_id,
    )


async def delivery(
    pool: "asyncpg.Pool[Any]",
    user_id: uuid.UUID,
    *,
    endpoint_id: uuid.UUID | None = None,
    url: str | None = None,
    status: str = "pending",
    waiting_s: float = 0,
    created_s: float | None = None,
    last_attempt_s: float | None = None,
    next_attempt_s: float = 0,
    locked_s: float | None = None,
    attempts: int = 0,
) -> uuid.UUID:
    """A delivery to ``endpoint_id`` or the one-off ``url``: (re)queued ``waiting_s`` ago
    (``retry_from``), created ``created_s`` ago (default: then), last tried ``last_attempt_s``
    ago (and delivered then, if delivered), next tried in ``next_attempt_s``, leased for
    ``locked_s`` more; with ``attempts`` rows of attempts."""
    delivery_id = uuid.uuid4()
    await pool.execute(
        """INSERT INTO webhook_deliveries
               (id, user_id, endpoint_id, url, request_id, event, payload, status, attempts,
                retry_from, created_at, next_attempt_at, locked_until, last_attempt_at,
                delivered_at)
           SELECT $1, $2, $3, $4, gen_random_uuid(), 'request.succeeded', '{}', $5, $6,
                  now() - make_interval(secs => $7), now() - make_interval(secs => $8),
                  now() + make_interval(secs => $9), now() + make_interval(secs => $10),
                  last_attempt, CASE WHEN $5 = 'delivered' THEN last_attempt END
           FROM (SELECT now() - make_interval(secs => $11) AS last_attempt) t""",
        delivery_id,
        user_id,
        endpoint_id,
        url,
        status,
        attempts,
        float(waiting_s),
        float(waiting_s if created_s is None else created_s),
        float(next_attempt_s),
        None if locked_s is None else float(locked_s),
        None if last_attempt_s is None else float(last_attempt_s),
    )
    for n in range(1, attempts + 1):
        await pool.execute(
            "INSERT INTO webhook_attempts (delivery_id, n, status_code, latency_ms) "
            "VALUES ($1, $2, 500, 12.5)",
            delivery_id,
            n,
        )
    return delivery_id
