"""The submit statements: a request, its steps, the reservation of its price and the outbox
rows of the jobs that start now, in one statement (so one transaction and one round trip).

A duplicate id inserts nothing and so charges nothing; a short balance aborts the statement
(``libs.ledger``), leaving nothing written; an ``Idempotency-Key`` already naming another of
the user's requests aborts it on the unique index."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import orjson

from libs import outbox
from libs.db import PgConnection, PgPool
from libs.files import uploads
from libs.ledger import lock_wallet, short_balance
from libs.ledger import movements as ledger

_REQUEST_COLUMNS = (
    "id, user_id, offer_id, deal_id, inputs, prompt, price, traceparent, idempotency_key, "
    "messages, options, pricing, webhook_url, tier, tier_percent, model, model_version, "
    "model_percents"
)

_STEPS_ONE = """, steps AS (
    INSERT INTO request_steps (request_id, idx, offer_id, role, mode, price, prompt)
    SELECT ins.id, s.idx, s.offer_id, s.role, s.mode, s.price, s.prompt
    FROM ins, unnest($11::int[], $12::uuid[], $13::text[], $14::text[], $15::bigint[], $16::text[])
        AS s(idx, offer_id, role, mode, price, prompt)
)"""


def _insert_one(*, steps: bool, files: bool = False) -> str:
    # The chat parameters, the one-off webhook URL and the tier come after the steps'
    # parameters, the input files' after them.
    chat = (
        "$17, $18, $19, $20, $21, $22, $23, $24, $25"
        if steps
        else "$11, $12, $13, $14, $15, $16, $17, $18, $19"
    )
    input_files = ""
    if files:
        first = 26 if steps else 20
        input_files = ", " + uploads.input_files_cte(request="ins", user="$2", first=first)
    return f"""
WITH ins AS (
    INSERT INTO requests ({_REQUEST_COLUMNS})
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, {chat})
    ON CONFLICT (id) DO NOTHING
    RETURNING id
){_STEPS_ONE if steps else ""}{input_files},
{ledger.reserve_or_abort(request="ins", user="$2", amount="$7")},
tasks AS (
    SELECT ins.id AS request_id, p.payload FROM ins, unnest($10::text[]) AS p(payload)
), {outbox.queue("tasks")}
SELECT EXISTS (SELECT 1 FROM ins)
"""


_INSERT_ONE = _insert_one(steps=False)
_INSERT_ONE_WITH_STEPS = _insert_one(steps=True)
_INSERT_ONE_WITH_FILES = _insert_one(steps=False, files=True)
_INSERT_ONE_WITH_STEPS_AND_FILES = _insert_one(steps=True, files=True)

# The same effect for many submissions in one round trip and one commit. Only what it can decide
# cheaply is decided here: requests that are new and affordable (in arrival order per user) are
# created; anything else (a duplicate, a short balance) is left for the one-request statement
# above, which gives the exact answer. Steps and tasks name their request by its place (``ord``)
# in the batch.
_INSERT_MANY = f"""
WITH input AS (
    SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::text[], $6::text[],
                         $7::bigint[], $8::text[], $9::text[], $19::text[], $20::text[],
                         $21::text[], $22::text[], $23::text[], $24::int[], $25::text[],
                         $26::text[], $27::text[])
        WITH ORDINALITY
        AS t(id, user_id, offer_id, deal_id, inputs, prompt, price, traceparent, idempotency_key,
             messages, options, pricing, webhook_url, tier, tier_percent, model, model_version,
             model_percents, ord)
), fresh AS (
    SELECT DISTINCT ON (i.id) i.* FROM input i
    WHERE NOT EXISTS (SELECT 1 FROM requests r WHERE r.id = i.id)
    ORDER BY i.id, i.ord
), {ledger.affordable("fresh", name="affordable")}, ins AS (
    INSERT INTO requests ({_REQUEST_COLUMNS})
    SELECT id, user_id, offer_id, deal_id, inputs::jsonb, prompt, price, traceparent,
           idempotency_key, messages::jsonb, options::jsonb, pricing::jsonb, webhook_url, tier,
           tier_percent, model, model_version, model_percents::jsonb
    FROM affordable
    ON CONFLICT (id) DO NOTHING
    RETURNING id, user_id, price
), placed AS (
    SELECT a.id, a.ord FROM ins JOIN affordable a ON a.id = ins.id
), steps AS (
    INSERT INTO request_steps (request_id, idx, offer_id, role, mode, price, prompt)
    SELECT p.id, s.idx, s.offer_id, s.role, s.mode, s.price, s.prompt
    FROM unnest($10::bigint[], $11::int[], $12::uuid[], $13::text[], $14::text[], $15::bigint[],
                $16::text[]) AS s(ord, idx, offer_id, role, mode, price, prompt)
    JOIN placed p ON p.ord = s.ord
), reserves AS (
    SELECT user_id, id AS request_id, NULL::int AS step, 'reserve' AS kind, price AS amount
    FROM ins
), {ledger.apply("reserves", locked=True)}, tasks AS (
    SELECT p.id AS request_id, q.payload
    FROM unnest($17::bigint[], $18::text[]) AS q(ord, payload) JOIN placed p ON p.ord = q.ord
), {outbox.queue("tasks")}
SELECT id FROM ins
"""

_STATUS = "SELECT status, price FROM requests WHERE id = $1 AND user_id = $2"

_EXISTS = "SELECT true FROM requests WHERE id = $1 AND user_id = $2"

_COUNT_UNFINISHED = """
SELECT count(*) FROM (
    SELECT 1 FROM requests WHERE user_id = $1 AND status IN ('pending', 'running') LIMIT $2
) s
"""

_STEPS = """
SELECT s.idx AS step, o.service, o.action, s.role, s.mode, s.price, s.status, s.results,
       s.error, s.attempt, s.started_at, s.finished_at
FROM request_steps s JOIN offers o ON o.id = s.offer_id
WHERE s.request_id = $1 ORDER BY s.idx
"""

IDEMPOTENCY_INDEX = "ix_requests_user_idempotency_key"


class CapReached(Exception):
    """The user already has as many unfinished requests as allowed; nothing was written."""


class KeyReused(Exception):
    """The user's ``Idempotency-Key`` already names another request (other inputs or target)."""


@dataclass(frozen=True, slots=True)
class NewStep:
    idx: int
    offer_id: uuid.UUID
    role: str
    mode: str | None
    price: int
    prompt: str | None
    """None for a pipeline step after the first: its input is the previous step's output."""


@dataclass(frozen=True, slots=True)
class NewRequest:
    id: uuid.UUID
    user_id: uuid.UUID
    offer_id: uuid.UUID | None
    deal_id: uuid.UUID | None
    inputs: dict[str, str]
    prompt: str
    price: int
    traceparent: str
    payloads: tuple[str, ...]
    """The tasks of the jobs that start now, as the relay will publish them."""
    steps: tuple[NewStep, ...] = field(default=())
    """A deal's request: one step per offer."""
    idempotency_key: str | None = None
    messages: list[dict[str, str]] | None = None
    options: dict[str, Any] | None = None
    pricing: dict[str, Any] | None = None
    webhook_url: str | None = None
    """The one-off URL the request's final state is sent to (checked already)."""
    files: tuple[uploads.InputFile, ...] = ()
    """The request's input files (their blobs registered and stored already), written by the
    one-request statement only: ``insert_many`` does not take them (see the batcher)."""
    tier: str = "default"
    tier_percent: int = 100
    model: tuple[str, str] | None = None
    """The name and version of the model a single offer's request runs, if any."""
    model_percents: dict[str, int] | None = None
    """Its fallback models' percentages of its price, by ``name@version``."""


@contextmanager
def submission_errors() -> Iterator[None]:
    """What a submit statement's violations mean: ``libs.ledger.ShortBalance`` for a short
    balance, ``KeyReused`` for a second request under one Idempotency-Key."""
    try:
        with short_balance():
            yield
    except asyncpg.UniqueViolationError as exc:
        if exc.constraint_name == IDEMPOTENCY_INDEX:
            raise KeyReused from exc
        raise


async def insert_one(db: PgPool | PgConnection, new: NewRequest) -> bool:
    """True when the request was created; False when it already existed. Raises
    ``ShortBalance`` or ``KeyReused``, having written nothing."""
    args: list[Any] = [
        new.id,
        new.user_id,
        new.offer_id,
        new.deal_id,
        new.inputs,
        new.prompt,
        new.price,
        new.traceparent,
        new.idempotency_key,
        list(new.payloads),
    ]
    if new.steps:
        args += [
            [s.idx for s in new.steps],
            [s.offer_id for s in new.steps],
            [s.role for s in new.steps],
            [s.mode for s in new.steps],
            [s.price for s in new.steps],
            [s.prompt for s in new.steps],
        ]
    args += [new.messages, new.options, new.pricing, new.webhook_url, new.tier, new.tier_percent]
    args += [*(new.model or (None, None)), new.model_percents]
    if new.files:
        args += uploads.input_files_args(new.files)
        statement = _INSERT_ONE_WITH_STEPS_AND_FILES if new.steps else _INSERT_ONE_WITH_FILES
    else:
        statement = _INSERT_ONE_WITH_STEPS if new.steps else _INSERT_ONE
    with submission_errors():
        created = await db.fetchval(statement, *args)
    return bool(created)


async def insert_within_cap(pool: PgPool, new: NewRequest, *, cap: int) -> bool:
    """``insert_one``, unless the user already has ``cap`` unfinished requests (``CapReached``;
    a duplicate of one of them is still found). The count and the write happen under the user's
    wallet lock, so concurrent submissions of one user are counted one after the other."""
    async with pool.acquire() as conn, conn.transaction():
        await lock_wallet(conn, new.user_id)
        if await conn.fetchval(_EXISTS, new.id, new.user_id):
            return False
        if await count_unfinished(conn, new.user_id, limit=cap) >= cap:
            raise CapReached
        return await insert_one(conn, new)


async def insert_many(db: PgPool | PgConnection, batch: list[NewRequest]) -> set[uuid.UUID]:
    """The ids of the requests of ``batch`` created, all in one transaction. Requests with
    input files are not taken (``ValueError``): they go through ``insert_one``."""
    if any(n.files for n in batch):
        raise ValueError("the batch statement writes no input files; use insert_one")
    steps = [(ord_, s) for ord_, n in enumerate(batch, 1) for s in n.steps]
    tasks = [(ord_, p) for ord_, n in enumerate(batch, 1) for p in n.payloads]
    rows = await db.fetch(
        _INSERT_MANY,
        [n.id for n in batch],
        [n.user_id for n in batch],
        [n.offer_id for n in batch],
        [n.deal_id for n in batch],
        [orjson.dumps(n.inputs).decode() for n in batch],
        [n.prompt for n in batch],
        [n.price for n in batch],
        [n.traceparent for n in batch],
        [n.idempotency_key for n in batch],
        [o for o, _ in steps],
        [s.idx for _, s in steps],
        [s.offer_id for _, s in steps],
        [s.role for _, s in steps],
        [s.mode for _, s in steps],
        [s.price for _, s in steps],
        [s.prompt for _, s in steps],
        [o for o, _ in tasks],
        [p for _, p in tasks],
        [_json(n.messages) for n in batch],
        [_json(n.options) for n in batch],
        [_json(n.pricing) for n in batch],
        [n.webhook_url for n in batch],
        [n.tier for n in batch],
        [n.tier_percent for n in batch],
        [n.model[0] if n.model else None for n in batch],
        [n.model[1] if n.model else None for n in batch],
        [_json(n.model_percents) for n in batch],
    )
    return {row["id"] for row in rows}


def _json(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


async def get_status(
    db: PgPool | PgConnection, request_id: uuid.UUID, user_id: uuid.UUID
) -> asyncpg.Record | None:
    return await db.fetchrow(_STATUS, request_id, user_id)


async def count_unfinished(db: PgPool | PgConnection, user_id: uuid.UUID, *, limit: int) -> int:
    """How many of the user's requests are pending or running, counted up to ``limit``."""
    count: int = await db.fetchval(_COUNT_UNFINISHED, user_id, limit)
    return count


async def steps_of(db: PgPool | PgConnection, request_id: uuid.UUID) -> list[asyncpg.Record]:
    """A deal's request's steps, in order."""
    return await db.fetch(_STEPS, request_id)
