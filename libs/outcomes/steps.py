"""Outcomes of the steps of a deal's request.

Each request's batch of reports is written in its own transaction, under a lock on the request
row (so a request moves one batch at a time and only one user row is touched per transaction):

- a step moves only forward (pending → running → succeeded | failed), and a report from an
  attempt older than the step's current one changes nothing, so a second delivery is a no-op;
- a step that succeeds registers its file results (``libs.files.results``) as it is recorded;
- a step that ends settles its share of the price (success) or refunds it (failure), one
  ledger row each;
- in a pipeline, a step that succeeds queues the next one through the outbox, in this same
  transaction, with its prompt rendered from the previous output; a step that fails fails every
  pipeline step after it (they never run) and refunds their shares;
- once every step has ended, the request ends: ``succeeded`` if every step did, else ``failed``;
- a cancelled request cancels its unfinished steps and refunds their shares;
- a step that ends, and the request once it ends, queue their webhook events through the outbox
  in the same transaction.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

import asyncpg

from libs import outbox
from libs.catalog import PipelineMode, PromptTemplate
from libs.catalog.models import route_from, route_sql
from libs.catalog.pipeline import passed_on, render_next
from libs.db import PgConnection
from libs.files import results as result_files
from libs.ledger import apply_moves

_LOCK_REQUEST = """
SELECT r.id, r.user_id, r.status, r.traceparent, r.inputs, r.created_at, d.pipeline
FROM requests r JOIN deals d ON d.id = r.deal_id
WHERE r.id = $1 AND r.status IN ('pending', 'running')
FOR UPDATE OF r
"""

_START_STEPS = """
UPDATE request_steps s SET status = 'running', started_at = now(), updated_at = now()
FROM unnest($2::int[], $3::int[]) AS t(idx, attempt)
WHERE s.request_id = $1 AND s.idx = t.idx AND t.attempt >= s.attempt AND s.status = 'pending'
RETURNING s.idx
"""

_START_REQUEST = """
UPDATE requests SET status = 'running', started_at = now(), updated_at = now()
WHERE id = $1 AND status = 'pending'
RETURNING id, user_id, status, results, error, updated_at, traceparent, usage,
          false AS unseen_start
"""

_TOUCH_REQUEST = "UPDATE requests SET updated_at = now() WHERE id = $1"

# A step that succeeds registers its file results (``libs.files.results``) in the same statement.
_END_STEP = f"""
WITH ended AS (
    UPDATE request_steps s
    SET status = $4, results = $5, error = $6, usage = $7,
        started_at = coalesce(s.started_at, now()), finished_at = now(), updated_at = now()
    WHERE s.request_id = $1 AND s.idx = $2 AND $3 >= s.attempt
      AND s.status IN ('pending', 'running')
    RETURNING s.idx, s.role, s.mode, s.price, s.finished_at, s.status, s.results
), step_results AS (
    SELECT $8::uuid AS user_id, $1::uuid AS request_id, idx AS step, results
    FROM ended WHERE status = 'succeeded'
), {result_files.register("step_results")}
SELECT idx, role, mode, price, finished_at FROM ended
"""

_SET_OUTPUT = "UPDATE request_steps SET output = $3 WHERE request_id = $1 AND idx = $2"

_QUEUE_STEP = f"""
WITH prompted AS (
    UPDATE request_steps SET prompt = $3, updated_at = now()
    WHERE request_id = $1 AND idx = $2 RETURNING request_id, $4::text AS payload
), {outbox.queue("prompted")}
SELECT 1
"""

_NEXT_STEP = f"""
SELECT s.idx, o.prompt_template, o.handler_id, o.create_qty, h.params || o.params AS params,
       {route_sql("o.model", "o.model_version", "o.fallbacks")} AS route
FROM request_steps s JOIN offers o ON o.id = s.offer_id JOIN handlers h ON h.id = o.handler_id
WHERE s.request_id = $1 AND s.role = 'primary' AND s.idx > $2 AND s.status = 'pending'
ORDER BY s.idx LIMIT 1
"""

_SKIP_REST = """
UPDATE request_steps
SET status = 'failed', error = $3, finished_at = now(), updated_at = now()
WHERE request_id = $1 AND role = 'primary' AND idx > $2 AND status = 'pending'
RETURNING idx, price
"""

_STEPS = """
SELECT s.idx, s.role, s.status, s.results, s.output, s.error, o.service, o.action
FROM request_steps s JOIN offers o ON o.id = s.offer_id
WHERE s.request_id = $1 ORDER BY s.idx
"""

# A request that ends has the usage of its steps summed count by count (null when none had any).
_STEPS_USAGE = """
(SELECT jsonb_object_agg(u.key, u.total)
 FROM (SELECT c.key, sum(c.value::bigint) AS total
       FROM request_steps s, jsonb_each_text(s.usage) AS c
       WHERE s.request_id = $1 GROUP BY c.key) u)
"""

_END_REQUEST = f"""
UPDATE requests
SET status = $2, results = $3, error = $4, started_at = coalesce(started_at, now()),
    finished_at = now(), updated_at = now(), usage = {_STEPS_USAGE}
WHERE id = $1
RETURNING id, user_id, status, results, error, updated_at, traceparent, usage,
          false AS unseen_start, created_at, finished_at
"""


_CANCEL_STEPS = """
UPDATE request_steps SET status = 'cancelled', error = $2, finished_at = now(), updated_at = now()
WHERE request_id = $1 AND status IN ('pending', 'running')
RETURNING idx, price
"""

_CANCEL_REQUEST = f"""
UPDATE requests
SET status = 'cancelled', error = $2, finished_at = now(), updated_at = now(),
    usage = {_STEPS_USAGE}
WHERE id = $1
RETURNING id, user_id, status, results, error, updated_at, traceparent, usage,
          false AS unseen_start, created_at, finished_at
"""


@dataclass(frozen=True, slots=True)
class StepStarted:
    request_id: uuid.UUID
    step: int
    attempt: int


@dataclass(frozen=True, slots=True)
class StepEnded:
    request_id: uuid.UUID
    step: int
    attempt: int
    status: Literal["succeeded", "failed"]
    results: list[Any] | None = None
    error: str | None = None
    usage: dict[str, int] | None = None


Moves = list[tuple[int | None, str, int]]
"""Credit movements of one request: ``(step, kind, amount)``, for ``libs.ledger``."""


def by_request(
    *, started: Sequence[StepStarted] = (), ended: Sequence[StepEnded] = ()
) -> list[tuple[uuid.UUID, list[StepStarted], list[StepEnded]]]:
    """A batch of step reports (at most one ``StepEnded`` per step), grouped by request in id
    order: each request's are written by ``record_request_steps`` in a transaction of its own,
    which the caller opens."""
    starts: dict[uuid.UUID, list[StepStarted]] = defaultdict(list)
    ends: dict[uuid.UUID, list[StepEnded]] = defaultdict(list)
    for s in started:
        starts[s.request_id].append(s)
    for e in ended:
        ends[e.request_id].append(e)
    return [
        (request_id, starts.get(request_id, []), ends.get(request_id, []))
        for request_id in sorted(starts.keys() | ends.keys())
    ]


async def record_request_steps(
    conn: PgConnection,
    request_id: uuid.UUID,
    *,
    started: Sequence[StepStarted],
    ended: Sequence[StepEnded],
) -> list[asyncpg.Record]:
    """One request's reports, in the caller's transaction; returns the new state of every
    request it changed, as ``record_outcomes`` does."""
    request = await conn.fetchrow(_LOCK_REQUEST, request_id)
    if request is None:
        return []
    ended_steps = {e.step for e in ended}
    starting = [s for s in started if s.step not in ended_steps]
    moved = []
    if starting:
        moved = await conn.fetch(
            _START_STEPS, request_id, [s.step for s in starting], [s.attempt for s in starting]
        )
    money: Moves = []
    endings: list[outbox.Ending] = []
    for report in sorted(ended, key=lambda e: e.step):
        await _end_step(conn, request, report, money, endings)
    if not moved and not money:
        return []
    changed: list[asyncpg.Record] = []
    row = await conn.fetchrow(_START_REQUEST, request_id)
    if row is not None:
        changed.append(row)
    else:  # progress: recon must not take the request for stuck
        await conn.execute(_TOUCH_REQUEST, request_id)
    if money:
        await apply_moves(conn, user_id=request["user_id"], request_id=request_id, moves=money)
        final = await _end_if_done(conn, request_id)
        if final is not None:
            changed.append(final)
            endings.append(_ending(final))
    await outbox.queue_events(conn, endings)
    return changed


async def cancel_request_steps(
    conn: PgConnection,
    request_id: uuid.UUID,
    *,
    error: str,
    streamed: Collection[int] = (),
) -> list[asyncpg.Record]:
    """Cancel a deal's unfinished request, in the caller's transaction: every step that has not
    ended is cancelled and its share refunded, unless its output has begun to stream (its index
    is in ``streamed``): that was delivered, and is charged like the steps that ended. The
    request ends ``cancelled``. Reports on its steps change nothing afterwards. Returns the new
    state of the request, as ``record_outcomes`` does; nothing if it had already ended."""
    request = await conn.fetchrow(_LOCK_REQUEST, request_id)
    if request is None:
        return []
    money: Moves = [
        (step["idx"], "settle" if step["idx"] in streamed else "refund", step["price"])
        for step in await conn.fetch(_CANCEL_STEPS, request_id, error)
    ]
    await apply_moves(conn, user_id=request["user_id"], request_id=request_id, moves=money)
    rows = await conn.fetch(_CANCEL_REQUEST, request_id, error)
    await outbox.queue_events(conn, [_ending(row) for row in rows])
    return rows


def _ending(request: asyncpg.Record) -> outbox.Ending:
    """A deal's request that ended, for its webhook events."""
    return outbox.Ending(
        user_id=request["user_id"],
        request_id=request["id"],
        status=request["status"],
        created_at=request["created_at"],
        finished_at=request["finished_at"],
    )


async def _end_step(
    conn: PgConnection,
    request: asyncpg.Record,
    report: StepEnded,
    money: Moves,
    endings: list[outbox.Ending],
) -> None:
    step = await conn.fetchrow(
        _END_STEP,
        request["id"],
        report.step,
        report.attempt,
        report.status,
        report.results if report.status == "succeeded" else None,
        report.error if report.status == "failed" else None,
        report.usage,
        request["user_id"],
    )
    if step is None:
        return
    money.append(
        (step["idx"], "settle" if report.status == "succeeded" else "refund", step["price"])
    )
    endings.append(
        outbox.Ending(
            user_id=request["user_id"],
            request_id=request["id"],
            status=report.status,
            created_at=request["created_at"],
            finished_at=step["finished_at"],
            step=step["idx"],
        )
    )
    if not (request["pipeline"] and step["role"] == "primary"):
        return
    if report.status == "succeeded":
        await _pass_on(conn, request, step, report.results or [])
        return
    skipped = await conn.fetch(
        _SKIP_REST, request["id"], step["idx"], f"not run: step {step['idx']} failed"
    )
    money.extend((s["idx"], "refund", s["price"]) for s in skipped)


async def _pass_on(
    conn: PgConnection,
    request: asyncpg.Record,
    step: asyncpg.Record,
    results: list[Any],
) -> None:
    """Record what a pipeline step passes on, and queue the next step with it as input."""
    previous = await conn.fetchval(
        "SELECT output FROM request_steps WHERE request_id = $1 AND role = 'primary' "
        "AND idx < $2 ORDER BY idx DESC LIMIT 1",
        request["id"],
        step["idx"],
    )
    output = passed_on(cast(PipelineMode, step["mode"]), previous, results)
    await conn.execute(_SET_OUTPUT, request["id"], step["idx"], output)
    nxt = await conn.fetchrow(_NEXT_STEP, request["id"], step["idx"])
    if nxt is None:
        return
    prompt = render_next(PromptTemplate.parse(nxt["prompt_template"]), request["inputs"], output)
    run = outbox.Run(
        nxt["handler_id"],
        prompt,
        nxt["params"],
        nxt["create_qty"],
        route=route_from(nxt["route"]),
    )
    payload = outbox.next_step(
        run, request_id=request["id"], traceparent=request["traceparent"], step=nxt["idx"]
    )
    await conn.execute(_QUEUE_STEP, request["id"], nxt["idx"], prompt, payload)


async def _end_if_done(conn: PgConnection, request_id: uuid.UUID) -> asyncpg.Record | None:
    steps = await conn.fetch(_STEPS, request_id)
    if any(s["status"] in ("pending", "running") for s in steps):
        return None
    failed = [s for s in steps if s["status"] != "succeeded"]
    if failed:
        first = failed[0]
        error = (
            f"step {first['idx']} ({first['service']}/{first['action']}) failed: {first['error']}"
        )
        return await conn.fetchrow(_END_REQUEST, request_id, "failed", None, error)
    return await conn.fetchrow(_END_REQUEST, request_id, "succeeded", deal_results(steps), None)


def deal_results(steps: Sequence[asyncpg.Record]) -> list[Any]:
    """A deal's results: the last pipeline step's output (or, without a pipeline, every primary
    step's results in order), then the add-ons' results."""
    primary = [s for s in steps if s["role"] == "primary"]
    if primary and primary[-1]["output"] is not None:
        out = list(primary[-1]["output"])
    else:
        out = [r for s in primary for r in (s["results"] or [])]
    return out + [r for s in steps if s["role"] == "addon" for r in (s["results"] or [])]
