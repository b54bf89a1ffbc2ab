"""SQL of the usage aggregation. Times are the database's."""

from datetime import datetime

import asyncpg

from libs.db import PgConnection

MARK = "usage"

_START_MARK = """
INSERT INTO recon_marks (name, at) VALUES ($1, 'epoch') ON CONFLICT (name) DO NOTHING
"""
# ``until``: ``lag_s`` ago, and before the start of every transaction still open in this
# database. A request's ``finished_at`` is its writer's ``now()`` (the start of its transaction),
# so every row finished before the oldest open transaction began is committed, hence visible to
# the aggregation that follows (run-of-the-mill READ COMMITTED: a new snapshot per statement);
# a later one is left for the next run. A slow commit is therefore never skipped.
_LOCK_MARK = """
SELECT at, least(now() - make_interval(secs => $2),
                 (SELECT min(xact_start) - interval '1 microsecond' FROM pg_stat_activity
                  WHERE datname = current_database() AND backend_type = 'client backend'
                    AND pid <> pg_backend_pid() AND xact_start IS NOT NULL)) AS until
FROM recon_marks WHERE name = $1 FOR UPDATE
"""
_MOVE_MARK = "UPDATE recon_marks SET at = $2 WHERE name = $1"

# What ended in (since, until]: single-offer requests and the steps of deals' requests, with the
# credits their settle rows moved (an expired request keeps what it was charged) and what they
# cost the operator, folded into the hour each ended in, per offer.
_AGGREGATE = """
WITH ended AS (
    SELECT r.user_id, o.handler_id,
           coalesce(r.deployment, (h.params || o.params) ->> 'integration', '') AS integration,
           o.service || '/' || o.action AS offer,
           coalesce(r.model || '@' || r.model_version, '') AS model, r.finished_at,
           coalesce(r.cost, 0) AS cost,
           (SELECT coalesce(sum(l.amount), 0) FROM credit_ledger l
            WHERE l.request_id = r.id AND l.kind = 'settle') AS credits,
           coalesce((r.usage ->> 'input_tokens')::bigint, 0) AS input_tokens,
           coalesce((r.usage ->> 'output_tokens')::bigint, 0) AS output_tokens
    FROM requests r JOIN offers o ON o.id = r.offer_id JOIN handlers h ON h.id = o.handler_id
    WHERE r.finished_at > $1 AND r.finished_at <= $2
    UNION ALL
    SELECT r.user_id, o.handler_id, coalesce((h.params || o.params) ->> 'integration', ''),
           o.service || '/' || o.action, '', s.finished_at, 0,
           (SELECT coalesce(sum(l.amount), 0) FROM credit_ledger l
            WHERE l.request_id = s.request_id AND l.step = s.idx AND l.kind = 'settle'),
           coalesce((s.usage ->> 'input_tokens')::bigint, 0),
           coalesce((s.usage ->> 'output_tokens')::bigint, 0)
    FROM request_steps s JOIN requests r ON r.id = s.request_id
    JOIN offers o ON o.id = s.offer_id JOIN handlers h ON h.id = o.handler_id
    WHERE s.finished_at > $1 AND s.finished_at <= $2
)
INSERT INTO usage_hourly AS u (hour, user_id, handler_id, integration, offer, model, requests,
                               succeeded, failed, credits, input_tokens, output_tokens, cost)
SELECT date_trunc('hour', finished_at), user_id, handler_id, integration, offer, model, count(*),
       count(*) FILTER (WHERE credits > 0), count(*) FILTER (WHERE credits = 0),
       sum(credits), sum(input_tokens), sum(output_tokens), sum(cost)
FROM ended GROUP BY 1, 2, 3, 4, 5, 6
ON CONFLICT (hour, user_id, handler_id, integration, offer, model) DO UPDATE SET
    requests = u.requests + EXCLUDED.requests, succeeded = u.succeeded + EXCLUDED.succeeded,
    failed = u.failed + EXCLUDED.failed, credits = u.credits + EXCLUDED.credits,
    input_tokens = u.input_tokens + EXCLUDED.input_tokens,
    output_tokens = u.output_tokens + EXCLUDED.output_tokens, cost = u.cost + EXCLUDED.cost
"""

# This hour's totals, and a zero for every series the last hour had and this one has not yet:
# at the turn of the hour the exported gauges drop to 0 rather than vanish, so a panel or a rule
# reading them sees "nothing yet" instead of "no data".
_CURRENT_HOUR = """
SELECT handler_id, integration,
       coalesce(sum(credits) FILTER (WHERE hour = date_trunc('hour', now())), 0) AS credits,
       coalesce(sum(input_tokens) FILTER (WHERE hour = date_trunc('hour', now())), 0)
           AS input_tokens,
       coalesce(sum(output_tokens) FILTER (WHERE hour = date_trunc('hour', now())), 0)
           AS output_tokens
FROM usage_hourly WHERE hour >= date_trunc('hour', now()) - interval '1 hour' GROUP BY 1, 2
"""


_CURRENT_HOUR_BY_OFFER = """
SELECT offer,
       coalesce(sum(credits) FILTER (WHERE hour = date_trunc('hour', now())), 0) AS credits,
       coalesce(sum(cost) FILTER (WHERE hour = date_trunc('hour', now())), 0) AS cost
FROM usage_hourly WHERE hour >= date_trunc('hour', now()) - interval '1 hour' GROUP BY 1
"""


async def aggregate(conn: PgConnection, *, lag_s: float) -> int:
    """Fold what ended since the last run (up to ``lag_s`` ago) into ``usage_hourly`` and move
    the mark, in the caller's transaction; the row lock on the mark serializes replicas."""
    await conn.execute(_START_MARK, MARK)
    row = await conn.fetchrow(_LOCK_MARK, MARK, lag_s)
    assert row is not None
    since: datetime = row["at"]
    until: datetime = row["until"]
    if until <= since:
        return 0
    status = await conn.execute(_AGGREGATE, since, until)
    await conn.execute(_MOVE_MARK, MARK, until)
    return int(status.split()[-1])


async def current_hour(conn: PgConnection) -> list[asyncpg.Record]:
    return await conn.fetch(_CURRENT_HOUR)


async def current_hour_by_offer(conn: PgConnection) -> list[asyncpg.Record]:
    return await conn.fetch(_CURRENT_HOUR_BY_OFFER)
