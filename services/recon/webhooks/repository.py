"""Webhook figures and retention, read and deleted in Postgres. Ages use the database clock."""

from __future__ import annotations

import uuid

from libs.db import PgConnection
from services.recon.webhooks.schemas import WebhookFigures

FINISHED = "greatest(retry_from, last_attempt_at, delivered_at)"
"""When a finished delivery finished: its last attempt, its delivery, or (never tried since) when
it was queued or sent again. The expression of ``ix_webhook_deliveries_finished`` (migration
0020), spelled the same so that the index serves, with the status as a literal."""

FAILED_WINDOW_S = 3600
"""The window of ``failed_last_hour``."""

_FIGURES = f"""
SELECT
    count(*) AS pending,
    count(*) FILTER (
        WHERE next_attempt_at <= now() AND (locked_until IS NULL OR locked_until < now())
    ) AS due,
    count(DISTINCT coalesce(endpoint_id::text, url)) AS destinations,
    extract(epoch FROM clock_timestamp() - min(retry_from))::float8 AS oldest_pending_age,
    (SELECT count(*) FROM webhook_endpoints WHERE NOT enabled) AS endpoints_disabled,
    (SELECT count(*) FROM webhook_deliveries
     WHERE status = 'failed' AND {FINISHED} > now() - make_interval(secs => {FAILED_WINDOW_S}))
        AS failed_last_hour
FROM webhook_deliveries WHERE status = 'pending'
"""


async def read_figures(conn: PgConnection) -> WebhookFigures:
    row = await conn.fetchrow(_FIGURES)
    assert row is not None
    return WebhookFigures(
        pending=row["pending"],
        due=row["due"],
        destinations=row["destinations"],
        oldest_pending_age_seconds=row["oldest_pending_age"],
        endpoints_disabled=row["endpoints_disabled"],
        failed_last_hour=row["failed_last_hour"],
    )


async def disabled_endpoints(conn: PgConnection) -> set[uuid.UUID]:
    rows = await conn.fetch("SELECT id FROM webhook_endpoints WHERE NOT enabled")
    return {row["id"] for row in rows}


FINISHED_STATUSES = ("delivered", "failed")

# One statement per status, the status written out: a generic plan of ``status = $1`` could not
# prove the partial index's ``status <> 'pending'`` and would scan the table.
_DELETE = {
    status: f"""
WITH doomed AS (
    SELECT id FROM webhook_deliveries
    WHERE status = '{status}' AND {FINISHED} < now() - make_interval(secs => $1)
    ORDER BY {FINISHED}
    LIMIT $2
    FOR UPDATE SKIP LOCKED
), gone AS (
    DELETE FROM webhook_deliveries d USING doomed WHERE d.id = doomed.id RETURNING 1
)
SELECT count(*) FROM gone
"""
    for status in FINISHED_STATUSES
}


async def delete_finished(
    conn: PgConnection, *, status: str, older_than_s: float, limit: int
) -> int:
    """Delete up to ``limit`` deliveries of ``status`` (delivered or failed) that finished more
    than ``older_than_s`` ago, skipping those another transaction holds (another replica's
    batch, a redelivery under way); their attempts go with them (ON DELETE CASCADE)."""
    deleted: int = await conn.fetchval(_DELETE[status], older_than_s, limit)
    return deleted
