"""Submission rules: inputs checked against the offer's template, id derived, price reserved."""

from __future__ import annotations

import base64
import functools
import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import orjson
from prometheus_client.metrics import Counter as CounterChild
from redis.asyncio import Redis
from redis.exceptions import RedisError

from libs.config import ApiConfig, ConfigWatcher
from libs.contracts import (
    CANCEL_CHANNEL,
    CANCELLED_TTL_S,
    EVENT_BATCH,
    EVENTS_CHANNEL,
    FINAL_STATUSES,
    RequestStatus,
    TaskMessage,
    cancelled_key,
)
from libs.logs import get_logger
from libs.outcomes import Ended, cancel_request_steps, events_of, record_outcomes
from libs.telemetry import current_traceparent, span
from services.api.auth.service import Principal
from services.api.catalog.service import Offer
from services.api.errors import (
    BadRequest,
    Conflict,
    InsufficientCredits,
    InvalidInputs,
    NotFound,
    TooManyRequests,
)
from services.api.metrics import (
    CREDITS_RESERVED,
    REQUESTS_BY_OFFER,
    SUBMISSION_ACCEPTED,
    SUBMISSION_DUPLICATE,
    SUBMISSION_REFUSED_CREDITS,
)
from services.api.requests import repository
from services.api.requests.batcher import SubmitBatcher

log = get_logger(__name__)

REQUEST_ID_NAMESPACE = uuid.UUID("5f0c7f3e-8a4b-4d1e-9a57-2c1e0d6b9a10")


def parse_inputs(body: bytes, offer: Offer) -> dict[str, str]:
    """The body as the template's variables, or a 4xx naming what is wrong."""
    try:
        data = orjson.loads(body or b"null")
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"body is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise BadRequest(
            "body must be a JSON object with the fields: " + ", ".join(offer.template.variables)
        )
    check_string_fields(data, offer.template.variables, noun="fields")
    return data


def check_string_fields(data: dict[str, Any], expected: Sequence[str], *, noun: str) -> None:
    """``data`` has exactly the ``expected`` names, each a string Postgres can store; else a 422
    naming the missing, unknown, non-string and NUL-holding ones (``noun``: fields, inputs)."""
    missing = [name for name in expected if name not in data]
    unknown = sorted(name for name in data if name not in expected)
    if missing or unknown:
        parts = []
        if missing:
            parts.append(f"missing {noun}: " + ", ".join(missing))
        if unknown:
            parts.append(f"unknown {noun}: " + ", ".join(unknown))
        raise InvalidInputs("; ".join(parts), missing=missing, unknown=unknown)
    not_strings = [name for name in expected if not isinstance(data[name], str)]
    if not_strings:
        raise InvalidInputs(
            f"{noun} must be strings: " + ", ".join(not_strings), not_strings=not_strings
        )
    with_nul = [name for name in expected if "\x00" in data[name]]
    if with_nul:
        raise InvalidInputs(
            f"{noun} must not contain NUL characters: " + ", ".join(with_nul), not_text=with_nul
        )


def derive_request_id(
    user_id: uuid.UUID, offer_id: uuid.UUID, inputs: dict[str, str], idempotency_key: str | None
) -> uuid.UUID:
    """The same user, offer and inputs always name the same request (a resubmission is a
    duplicate); an ``Idempotency-Key`` lets a client ask for a new run of the same inputs."""
    canonical = orjson.dumps(
        [str(user_id), str(offer_id), inputs, idempotency_key], option=orjson.OPT_SORT_KEYS
    )
    return uuid.uuid5(REQUEST_ID_NAMESPACE, canonical.decode())


def new_traceparent() -> str:
    # Trace ids must be unique, not secret: the fast generator is enough.
    return f"00-{random.getrandbits(128):032x}-{random.getrandbits(64):016x}-01"


def valid_traceparent(value: str | None) -> str | None:
    if value is None:
        return None
    parts = value.strip().lower().split("-")
    if len(parts) != 4 or [len(p) for p in parts] != [2, 32, 16, 2]:
        return None
    if any(c not in "0123456789abcdef" for c in "".join(parts)):
        return None
    return "-".join(parts)


@dataclass(frozen=True, slots=True)
class Submission:
    id: uuid.UUID
    status: RequestStatus
    price: int
    duplicate: bool


async def submit(
    pool: asyncpg.Pool[Any],
    batcher: SubmitBatcher,
    *,
    user: Principal,
    offer: Offer,
    inputs: dict[str, str],
    idempotency_key: str | None,
    traceparent: str | None,
    max_prompt_chars: int,
    max_unfinished: int = 0,
) -> Submission:
    """Record the request (or find it) inside a ``relai.submit`` span, whose context is the
    ``traceparent`` every later message of the request carries."""
    offer_name = f"{offer.service}/{offer.action}"
    with span(
        "relai.submit", attributes={"relai.offer": offer_name, "relai.handler": offer.handler}
    ) as current:
        submission = await _submit(
            pool,
            batcher,
            user=user,
            offer=offer,
            inputs=inputs,
            idempotency_key=idempotency_key,
            # With tracing on, the caller's trace is joined by the HTTP server span already.
            traceparent=current_traceparent() or traceparent,
            max_prompt_chars=max_prompt_chars,
            max_unfinished=max_unfinished,
        )
        if current is not None:
            current.set_attribute("relai.request_id", str(submission.id))
            current.set_attribute("relai.duplicate", submission.duplicate)
    if not submission.duplicate:
        requests, credits = _offer_counters(offer_name, offer.handler)
        requests.inc()
        credits.inc(offer.price)
    return submission


@functools.lru_cache(maxsize=4096)
def _offer_counters(offer: str, handler: str) -> tuple[CounterChild, CounterChild]:
    """The offer's counters, looked up once (``labels()`` costs more than the increment)."""
    return REQUESTS_BY_OFFER.labels(offer, handler), CREDITS_RESERVED.labels(offer, handler)


async def _submit(
    pool: asyncpg.Pool[Any],
    batcher: SubmitBatcher,
    *,
    user: Principal,
    offer: Offer,
    inputs: dict[str, str],
    idempotency_key: str | None,
    traceparent: str | None,
    max_prompt_chars: int,
    max_unfinished: int,
) -> Submission:
    request_id = derive_request_id(user.id, offer.id, inputs, idempotency_key)
    if max_unfinished > 0:
        await check_unfinished(pool, user, request_id, max_unfinished)
    trace = valid_traceparent(traceparent) or new_traceparent()
    prompt = offer.template.render(inputs)
    if len(prompt) > max_prompt_chars:
        raise InvalidInputs(
            f"the prompt is {len(prompt)} characters long; the limit is {max_prompt_chars}",
            limit=max_prompt_chars,
        )
    task = TaskMessage(
        request_id=request_id,
        user_id=user.id,
        traceparent=trace,
        attempt=1,
        handler=offer.handler,
        prompt=prompt,
        params=offer.params,
        create_qty=offer.create_qty,
    )
    new = repository.NewRequest(
        id=request_id,
        user_id=user.id,
        offer_id=offer.id,
        inputs=inputs,
        prompt=prompt,
        price=offer.price,
        traceparent=trace,
        payload=task.model_dump_json(exclude_none=True),
        idempotency_key=idempotency_key,
    )
    try:
        created = await batcher.submit(new)
    except repository.KeyReused as exc:
        raise InvalidInputs(KEY_REUSED) from exc
    except repository.ShortBalance as exc:
        SUBMISSION_REFUSED_CREDITS.inc()
        log.info("request.refused", request_id=str(request_id), reason="insufficient credits")
        raise InsufficientCredits(
            f"this request costs {offer.price} credits, more than your available balance",
            price=offer.price,
        ) from exc
    if created:
        SUBMISSION_ACCEPTED.inc()
        log.debug(
            "request.accepted", request_id=str(request_id), offer=f"{offer.service}/{offer.action}"
        )
        return Submission(request_id, RequestStatus.PENDING, offer.price, duplicate=False)
    SUBMISSION_DUPLICATE.inc()
    existing = await repository.get_status(pool, request_id, user.id)
    if existing is None:  # pragma: no cover - ids are per user, so only a racing delete
        raise BadRequest("the request could not be recorded; try again")
    return Submission(
        request_id, RequestStatus(existing["status"]), existing["price"], duplicate=True
    )


async def check_unfinished(
    pool: asyncpg.Pool[Any], user: Principal, request_id: uuid.UUID, cap: int
) -> None:
    """429 when the user already has ``cap`` unfinished requests, unless this submission is
    one of them (a duplicate, answered as usual). Concurrent submissions are counted before
    they commit, so a burst may pass the cap by the number that raced."""
    if await repository.count_unfinished(pool, user.id, limit=cap) < cap:
        return
    if await repository.get_status(pool, request_id, user.id) is not None:
        return
    raise TooManyRequests(
        f"you have {cap} unfinished requests, the most allowed; submit more once some end",
        retry_after=1,
        limit=cap,
    )


def encode_cursor(created_at: datetime, request_id: uuid.UUID) -> str:
    raw = f"{created_at.isoformat()}|{request_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created_at, request_id = raw.split("|")
        return datetime.fromisoformat(created_at), uuid.UUID(request_id)
    except ValueError as exc:
        raise BadRequest("cursor is not one this API returned") from exc


def ask_offer(config: ConfigWatcher | None, fallback: str) -> str:
    """``service/action`` behind ``POST /ask``: the active config ``api`` names it, or the
    setting ``RELAI_ASK_OFFER`` does."""
    loaded = config.get("api") if config is not None else None
    if loaded is not None and isinstance(loaded.data, ApiConfig) and loaded.data.ask_offer:
        return loaded.data.ask_offer
    return fallback


CANCELLED_ERROR = "cancelled by the user"
KEY_REUSED = (
    "this Idempotency-Key was already used for a request with other inputs; use a new key for "
    "a new request, or send the same body to get the request it made"
)
_CANCEL_TRIES = 3


@dataclass(frozen=True, slots=True)
class Cancellation:
    id: uuid.UUID
    refunded: int


async def cancel(
    pool: asyncpg.Pool[Any], redis: Redis, *, user: Principal, request_id: uuid.UUID
) -> Cancellation:
    """Cancel an unfinished request of ``user``: one transaction ends it, refunds what it has
    not delivered (a request's whole reservation; a deal's steps that have not ended) and writes
    the ledger rows, on the outcome path workers' results take, so a late result finds nothing
    to change; then workers and watchers are told. Cancelling again gives the same answer; a
    request that ended otherwise is a 409."""
    for _ in range(_CANCEL_TRIES):
        row = await repository.get_state(pool, request_id, user.id)
        if row is None:
            raise NotFound("no such request")
        status = RequestStatus(row["status"])
        if status is RequestStatus.CANCELLED:
            return Cancellation(request_id, await repository.refunded(pool, request_id))
        if status in FINAL_STATUSES:
            raise Conflict(f"the request has already {status.value}", status=status.value)
        async with pool.acquire() as conn, conn.transaction():
            if row["deal"]:
                rows = await cancel_request_steps(conn, request_id, error=CANCELLED_ERROR)
            else:
                ended = Ended(request_id, row["attempt"], "cancelled", error=CANCELLED_ERROR)
                rows = await record_outcomes(conn, ended=[ended])
        if rows:
            log.info("request.cancelled", request_id=str(request_id))
            await _announce_cancel(redis, request_id, rows)
            return Cancellation(request_id, await repository.refunded(pool, request_id))
        # It ended, or a new attempt began, between the read and the write: look again.
    raise Conflict("the request changed while it was being cancelled; try again")


async def _announce_cancel(redis: Redis, request_id: uuid.UUID, rows: list[asyncpg.Record]) -> None:
    """Mark the request for workers that have yet to start it, tell those running it, and tell
    watchers. The cancellation is already committed: if Redis cannot be told, a worker may still
    run the job, and its result changes nothing."""
    pipe = redis.pipeline(transaction=True)
    pipe.set(cancelled_key(request_id), b"1", ex=CANCELLED_TTL_S)
    pipe.publish(CANCEL_CHANNEL, str(request_id))
    pipe.publish(EVENTS_CHANNEL, EVENT_BATCH.dump_json(events_of(rows), exclude_none=True))
    try:
        await pipe.execute()
    except (RedisError, OSError) as exc:
        log.warning("request.cancel_not_announced", request_id=str(request_id), error=repr(exc))
