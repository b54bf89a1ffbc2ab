"""The one statement that records outcomes. It only moves a request forward
(pending → running → succeeded | failed | cancelled), so a second delivery finds nothing to
change."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import asyncpg
import orjson

from libs import outbox
from libs.catalog.pricing import token_cost_sql
from libs.contracts import RequestEvent, RequestStatus
from libs.db import PgConnection, PgPool
from libs.files import results as result_files
from libs.ledger import movements as ledger

# One round trip for a whole batch of progress reports. A report from an attempt older than the
# request's current one (a worker presumed dead, re-driven since) changes nothing. A deal's
# request is left alone: it moves through its steps (``libs.outcomes.steps``).
# - ``started``: pending requests become running (those that also ended in this batch are
#   left to ``done``, since a statement may change a row only once);
# - ``done``: outcomes are recorded; success settles the reservation (it becomes spent),
#   failure or cancellation refunds it (it returns to the balance): ``libs.ledger``. A success
#   at per-token prices (``pricing``) settles what its usage costs, at most its reservation,
#   and releases the rest; one whose handler reported no usage at all settles its reservation
#   (what it was accepted at, when nothing says it cost less). A delivered request (a success,
#   or a cancel that charges what streamed) records what it cost the operator: its handler's
#   ``credits``.
#   A request is charged at its tier (``tier_percent`` of the offer's prices, rounded up): its
#   price was reserved so. Served at a cheaper tier than it asked for (a worker that does not
#   honour tiers serves ``default``), it is charged at ``default``: ``at_tier * 100 /
#   tier_percent`` rounded down gives back exactly what ``default`` costs, since ``at_tier``
#   is that rounded up by a factor of at least 1. Never at a dearer one than it asked for.
#   Served by one of its offer's fallback models (``ResultMessage.model``), it pays that model's
#   percentage (``requests.model_percents``, at most 100) of that: ``at_tier * billed_percent /
#   tier_percent`` rounded down, ``billed_percent`` being the tier's percentage billed times the
#   fallback's over 100. The request then shows the model that served it.
#   ``unseen_start``: the request was never written as running (its start came in the same
#   batch, or in one not committed yet): started_at and finished_at are then the same now().
#   A request cancelled before it started keeps no started_at.
# - ``succeeded_results``: a success registers its file results (``libs.files.results``).
# - ``endings``: each request that ended queues its webhook events (``libs.outbox``).
_RECORD = f"""
WITH outcome AS (
    SELECT * FROM unnest($3::uuid[], $4::int[], $5::text[], $6::text[], $7::text[], $8::text[],
                         $9::bigint[], $11::text[], $12::text[], $13::text[])
        AS t(id, attempt, status, results, error, usage, spent, tier, deployment, model)
), start AS (
    SELECT * FROM unnest($1::uuid[], $2::int[], $10::text[]) AS t(id, attempt, tier)
), started AS (
    UPDATE requests r SET status = 'running', started_at = now(), updated_at = now(),
        served_tier = coalesce(s.tier, r.served_tier)
    FROM start s
    WHERE r.id = s.id AND s.attempt >= r.attempt AND r.status = 'pending'
      AND r.id <> ALL($3::uuid[]) AND r.deal_id IS NULL
    RETURNING r.id, r.user_id, r.status, r.results, r.error, r.updated_at, r.traceparent, r.usage
), done AS (
    UPDATE requests r
    SET status = o.status, results = o.results::jsonb, error = o.error, usage = o.usage::jsonb,
        started_at = CASE WHEN o.status = 'cancelled' THEN r.started_at
                          ELSE coalesce(r.started_at, now()) END,
        finished_at = now(), updated_at = now(),
        served_tier = coalesce(o.tier, r.served_tier),
        deployment = coalesce(o.deployment, r.deployment),
        model = coalesce(split_part(o.model, '@', 1), r.model),
        model_version = coalesce(split_part(o.model, '@', 2), r.model_version),
        cost = CASE WHEN o.status = 'succeeded' OR o.spent > 0
                    THEN (SELECT h.credits FROM offers f JOIN handlers h ON h.id = f.handler_id
                          WHERE f.id = r.offer_id) END
    FROM outcome o
    WHERE r.id = o.id AND o.attempt >= r.attempt AND r.status IN ('pending', 'running')
      AND r.deal_id IS NULL
    RETURNING r.id, r.user_id, r.price, r.pricing, r.status, r.results, r.error, r.updated_at,
              r.traceparent, r.usage, r.started_at = r.finished_at AS unseen_start,
              r.created_at, r.finished_at, r.tier_percent,
              greatest(1, CASE WHEN r.tier_percent > 100 AND r.served_tier IS DISTINCT FROM r.tier
                               THEN 100 ELSE r.tier_percent END
                          * coalesce((r.model_percents ->> (r.model || '@' || r.model_version))
                                     ::int, 100) / 100) AS billed_percent
), succeeded_results AS (
    SELECT user_id, id AS request_id, NULL::int AS step, results
    FROM done WHERE status = 'succeeded'
), {result_files.register("succeeded_results")}, endings AS (
    SELECT user_id, id AS request_id, NULL::int AS step, status, created_at, finished_at
    FROM done
), {outbox.events("endings")}, charged AS (
    SELECT d.*, coalesce(o.spent, CASE WHEN d.status = 'succeeded' AND d.pricing IS NOT NULL
                                            AND d.usage IS NOT NULL
                                       THEN least(ceil({token_cost_sql("d.pricing", "d.usage")}
                                                       * d.tier_percent * 0.01), d.price)::bigint
                                       WHEN d.status = 'succeeded' AND d.billed_percent <>
                                            d.tier_percent THEN d.price END) AS at_tier
    FROM done d JOIN outcome o ON o.id = d.id
), ended AS (
    SELECT c.user_id, c.id AS request_id, NULL::int AS step, c.status, c.price,
           CASE WHEN c.billed_percent = c.tier_percent THEN c.at_tier
                ELSE c.at_tier * c.billed_percent / c.tier_percent END AS spent
    FROM charged c
), moves AS {ledger.ending("ended", spent="e.spent")}, {ledger.apply("moves")}
SELECT id, user_id, status, results, error, updated_at, traceparent, usage,
       false AS unseen_start, 0::bigint AS settled, 0::bigint AS refunded
FROM started
UNION ALL
SELECT id, user_id, status, results, error, updated_at, traceparent, usage, unseen_start,
       (SELECT coalesce(sum(m.amount), 0) FROM moves m
        WHERE m.request_id = done.id AND m.kind = 'settle')::bigint,
       (SELECT coalesce(sum(m.amount), 0) FROM moves m
        WHERE m.request_id = done.id AND m.kind = 'refund')::bigint
FROM done
"""


@dataclass(frozen=True, slots=True)
class Started:
    request_id: uuid.UUID
    attempt: int
    tier: str | None = None
    """The tier its job is served at, as its worker reported it."""


@dataclass(frozen=True, slots=True)
class Ended:
    request_id: uuid.UUID
    attempt: int
    status: Literal["succeeded", "failed", "cancelled"]
    results: list[Any] | None = None
    error: str | None = None
    usage: dict[str, int] | None = None
    spent: int | None = None
    """What the request costs, when not the ledger's default (for a success, its price, or at
    per-token prices what its usage costs; nothing otherwise): a cancelled request whose output
    was streamed is charged for it."""
    tier: str | None = None
    """The tier its job was served at, as its worker reported it (None: as its start said, or
    ``default`` when nothing did)."""
    deployment: str | None = None
    """For a job of a model: the deployment whose answer it reports, or the last one called."""
    model: str | None = None
    """With ``deployment``: ``name@version`` of the model it called (a fallback, when the
    request's own model could not answer: it then pays that fallback's percentage)."""


async def record_outcomes(
    db: PgPool | PgConnection,
    *,
    started: Sequence[Started] = (),
    ended: Sequence[Ended] = (),
) -> list[asyncpg.Record]:
    """Apply a batch (at most one ``Ended`` per request); returns the new state of every
    request it changed (``settled``, ``refunded``: the credits its ending settled and refunded,
    0 for a start). Pass a connection to run it inside a transaction of the caller's."""
    return await db.fetch(
        _RECORD,
        [s.request_id for s in started],
        [s.attempt for s in started],
        [e.request_id for e in ended],
        [e.attempt for e in ended],
        [e.status for e in ended],
        [None if e.results is None else orjson.dumps(e.results).decode() for e in ended],
        [e.error for e in ended],
        [None if e.usage is None else orjson.dumps(e.usage).decode() for e in ended],
        [e.spent for e in ended],
        [s.tier for s in started],
        [e.tier for e in ended],
        [e.deployment for e in ended],
        [e.model for e in ended],
    )


def events_of(rows: list[asyncpg.Record]) -> list[RequestEvent]:
    """The state changes ``record_outcomes`` made, as events for watchers. A request whose end
    was written before its start (both in one batch, or in batches written concurrently) still
    shows its watchers running first."""
    events: list[RequestEvent] = []
    for r in rows:
        event = RequestEvent(
            request_id=r["id"],
            user_id=r["user_id"],
            traceparent=r["traceparent"],
            status=RequestStatus(r["status"]),
            results=r["results"],
            error=r["error"],
            updated_at=r["updated_at"],
            usage=r["usage"],
        )
        if r["unseen_start"]:
            events.append(
                event.model_copy(update={"status": RequestStatus.RUNNING, "results": None})
            )
        events.append(event)
    return events


def credits_moved(rows: Sequence[asyncpg.Record]) -> tuple[int, int]:
    """The credits ``record_outcomes`` settled and refunded, from the rows it returned."""
    return sum(r["settled"] for r in rows), sum(r["refunded"] for r in rows)
