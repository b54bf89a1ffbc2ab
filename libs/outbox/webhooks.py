"""Webhook events, queued as the outbox queues tasks: a delivery row per event and destination,
written by the statement (or in the transaction) that records the final state it reports, so
that no crash can separate the two. The dispatcher takes them from there.

A request's final state is sent to each enabled endpoint of its owner that subscribed to
``request.<status>``, and to the one-off URL the request named at submit (if any); a deal's step
that ends, to the endpoints that subscribed to ``step.<status>``. The payload is written once,
so every attempt carries the same body and id.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from libs.contracts.webhooks import PING_EVENT, WEBHOOKS_CHANNEL
from libs.db import PgConnection

_EVENT = "CASE WHEN {s}.step IS NULL THEN 'request.' ELSE 'step.' END || {s}.status"

_PAYLOAD = """jsonb_build_object(
        'id', 'msg_' || replace({t}.delivery_id::text, '-', ''),
        'object', 'event',
        'type', {event},
        'created_at', floor(extract(epoch FROM now()))::bigint,
        'timestamp', now(),
        'data', {data}
    )::text"""

_REQUEST_DATA = """jsonb_strip_nulls(jsonb_build_object(
        'id', {t}.request_id,
        'object', CASE WHEN {t}.step IS NULL THEN 'request' ELSE 'request.step' END,
        'status', {t}.status,
        'step', {t}.step,
        'created_at', {t}.created_at,
        'finished_at', {t}.finished_at,
        'links', jsonb_build_object('self', '/svc/request/' || {t}.request_id)
    ))"""


def events(source: str, *, name: str = "webhook_events") -> str:
    """CTEs (the last named ``name``) that queue the webhook deliveries of the endings in
    ``source``, a relation of ``user_id, request_id, step, status, created_at, finished_at``
    (``step`` null for a request's own final state), to splice into the statement that records
    them."""
    event = _EVENT.format(s="s")
    return f"""{name}_to AS (
    SELECT s.user_id, s.request_id, s.step, s.status, s.created_at, s.finished_at,
           e.id AS endpoint_id, NULL::text AS url, gen_random_uuid() AS delivery_id
    FROM {source} s JOIN webhook_endpoints e
        ON e.user_id = s.user_id AND e.enabled AND ({event}) = ANY (e.events)
    UNION ALL
    SELECT s.user_id, s.request_id, s.step, s.status, s.created_at, s.finished_at,
           NULL::uuid, r.webhook_url, gen_random_uuid()
    FROM {source} s JOIN requests r ON r.id = s.request_id
    WHERE s.step IS NULL AND r.webhook_url IS NOT NULL
), {name} AS (
    INSERT INTO webhook_deliveries (id, user_id, endpoint_id, url, request_id, event, payload)
    SELECT t.delivery_id, t.user_id, t.endpoint_id, t.url, t.request_id, {_EVENT.format(s="t")},
           {_PAYLOAD.format(t="t", event=_EVENT.format(s="t"), data=_REQUEST_DATA.format(t="t"))}
    FROM {name}_to t
    RETURNING id
)"""


_QUEUE = f"""
WITH ending AS (
    SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::int[], $4::text[], $5::timestamptz[],
                         $6::timestamptz[])
        AS t(user_id, request_id, step, status, created_at, finished_at)
), {events("ending")}
SELECT count(*) FROM webhook_events
"""


@dataclass(frozen=True, slots=True)
class Ending:
    """A request (``step`` None) or a deal's step that reached a final state."""

    user_id: uuid.UUID
    request_id: uuid.UUID
    status: str
    created_at: datetime
    finished_at: datetime | None
    step: int | None = None


async def queue_events(conn: PgConnection, endings: Sequence[Ending]) -> int:
    """Queue the deliveries of ``endings``, in the caller's transaction (the one that records
    them); returns how many were queued."""
    if not endings:
        return 0
    count: int = await conn.fetchval(
        _QUEUE,
        [e.user_id for e in endings],
        [e.request_id for e in endings],
        [e.step for e in endings],
        [e.status for e in endings],
        [e.created_at for e in endings],
        [e.finished_at for e in endings],
    )
    return count


_PING_PAYLOAD = _PAYLOAD.format(
    t="t", event=f"'{PING_EVENT}'", data="jsonb_build_object('endpoint', t.endpoint_id)"
)
_PING = f"""
WITH target AS (
    SELECT e.id AS endpoint_id, e.user_id, gen_random_uuid() AS delivery_id
    FROM webhook_endpoints e WHERE e.id = $1 AND e.user_id = $2
)
INSERT INTO webhook_deliveries (id, user_id, endpoint_id, event, payload)
SELECT t.delivery_id, t.user_id, t.endpoint_id, '{PING_EVENT}',
       {_PING_PAYLOAD}
FROM target t
RETURNING id
"""


async def queue_ping(
    conn: PgConnection, *, user_id: uuid.UUID, endpoint_id: uuid.UUID
) -> uuid.UUID | None:
    """Queue a test event to an endpoint of ``user_id`` (even a disabled one: a ping is how its
    owner sees it answer again); returns the delivery's id, or None if it has no such endpoint."""
    delivery: uuid.UUID | None = await conn.fetchval(_PING, endpoint_id, user_id)
    return delivery


_REDELIVER = f"""
WITH again AS (
    UPDATE webhook_deliveries
    SET status = 'pending', retry_from = now(), next_attempt_at = now(), locked_until = NULL
    WHERE id = $1 AND user_id = $2 AND status <> 'pending'
    RETURNING id
)
SELECT id, pg_notify('{WEBHOOKS_CHANNEL}', '') FROM again
"""


async def redeliver(conn: PgConnection, *, user_id: uuid.UUID, delivery_id: uuid.UUID) -> bool:
    """Send a delivered or given-up delivery of ``user_id`` again, with the same id and body, as
    soon as a dispatcher can; False if it has no such delivery or that one is still pending."""
    row = await conn.fetchrow(_REDELIVER, delivery_id, user_id)
    return row is not None
