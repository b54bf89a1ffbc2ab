from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg

from services.api.requests.repository import submission_errors

_ENABLED_DEALS = """
SELECT id, slug, price, price_modifier, addons_modifier, pipeline, offers, addons
FROM deals WHERE enabled ORDER BY slug
"""

# The deal's request, its steps, the reservation of its whole price, its ledger row and one
# outbox row per step that can start now, in one statement (so one transaction), as for a
# single offer (see ``services.api.requests.repository``): a duplicate id writes nothing, and a
# short balance aborts the statement on the ledger row's NULL user_id.
_SUBMIT_DEAL = """
WITH ins AS (
    INSERT INTO requests (id, user_id, deal_id, inputs, prompt, price, traceparent,
                          idempotency_key)
    VALUES ($1, $2, $3, $4, '', $5, $6, $15)
    ON CONFLICT (id) DO NOTHING
    RETURNING id
), steps AS (
    INSERT INTO request_steps (request_id, idx, offer_id, role, mode, price, prompt)
    SELECT ins.id, s.idx, s.offer_id, s.role, s.mode, s.price, s.prompt
    FROM ins, unnest($7::int[], $8::uuid[], $9::text[], $10::text[], $11::bigint[], $12::text[])
        AS s(idx, offer_id, role, mode, price, prompt)
), charge AS (
    UPDATE users SET balance = balance - $5, reserved = reserved + $5
    WHERE id = $2 AND balance >= $5 AND EXISTS (SELECT 1 FROM ins)
    RETURNING id
), ledger AS (
    INSERT INTO credit_ledger (user_id, request_id, kind, amount)
    SELECT (SELECT id FROM charge), ins.id, 'reserve', $5 FROM ins
), outbox AS (
    INSERT INTO outbox (stream, request_id, payload)
    SELECT $13, ins.id, p.payload FROM ins, unnest($14::text[]) AS p(payload)
)
SELECT EXISTS (SELECT 1 FROM ins)
"""

_STEPS = """
SELECT s.idx AS step, o.service, o.action, s.role, s.mode, s.price, s.status, s.results,
       s.error, s.attempt, s.started_at, s.finished_at
FROM request_steps s JOIN offers o ON o.id = s.offer_id
WHERE s.request_id = $1 ORDER BY s.idx
"""


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
class NewDealRequest:
    id: uuid.UUID
    user_id: uuid.UUID
    deal_id: uuid.UUID
    inputs: dict[str, str]
    price: int
    traceparent: str
    steps: list[NewStep]
    payloads: list[str]
    """The task messages of the steps that start now, as the relay will publish them."""
    idempotency_key: str | None = None


async def enabled_deals(pool: asyncpg.Pool[Any]) -> list[asyncpg.Record]:
    return await pool.fetch(_ENABLED_DEALS)


async def insert_deal_request(pool: asyncpg.Pool[Any], new: NewDealRequest, *, stream: str) -> bool:
    """True when the request was created; False when it already existed. Raises
    ``ShortBalance``, having written nothing, when the user cannot pay for it."""
    with submission_errors():
        created = await pool.fetchval(
            _SUBMIT_DEAL,
            new.id,
            new.user_id,
            new.deal_id,
            new.inputs,
            new.price,
            new.traceparent,
            [s.idx for s in new.steps],
            [s.offer_id for s in new.steps],
            [s.role for s in new.steps],
            [s.mode for s in new.steps],
            [s.price for s in new.steps],
            [s.prompt for s in new.steps],
            stream,
            new.payloads,
            new.idempotency_key,
        )
    return bool(created)


async def steps_of(pool: asyncpg.Pool[Any], request_id: uuid.UUID) -> list[asyncpg.Record]:
    return await pool.fetch(_STEPS, request_id)
