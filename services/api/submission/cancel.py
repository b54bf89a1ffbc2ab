"""Cancelling a request, for every front door: one transaction ends it and refunds what it has
not delivered, on the outcome path workers' results take; then workers and watchers are told."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import asyncpg
from redis.asyncio import Redis
from redis.exceptions import RedisError

from libs import ledger
from libs.contracts import (
    CANCEL_CHANNEL,
    CANCELLED_TTL_S,
    EVENT_BATCH,
    EVENTS_CHANNEL,
    FINAL_STATUSES,
    RequestStatus,
    cancelled_key,
    chunks_stream,
    streamed_steps_key,
)
from libs.db import PgPool
from libs.logs import get_logger
from libs.outcomes import Ended, cancel_request_steps, events_of, record_outcomes
from services.api.auth.service import Principal
from services.api.errors import Conflict, NotFound
from services.api.submission import reads as repository
from services.api.submission.pricing import charged_when_cancelled_streaming, request_texts

log = get_logger(__name__)


CANCELLED_ERROR = "cancelled by the user"
_CANCEL_TRIES = 3


@dataclass(frozen=True, slots=True)
class Cancellation:
    id: uuid.UUID
    refunded: int


async def cancel(
    pool: PgPool, redis: Redis, *, user: Principal, request_id: uuid.UUID
) -> Cancellation:
    """Cancel an unfinished request of ``user``: one transaction ends it, refunds what it has
    not delivered (a request's whole reservation, unless it has streamed output, which was
    delivered and is charged: in full at a fixed price, its input's cost at token prices, see
    ``charged_when_cancelled_streaming``; a deal's steps that have neither ended nor streamed) and
    writes the ledger rows, on the outcome path workers' results take, so a late result finds
    nothing to change; then workers and watchers are told. Cancelling again gives the same
    answer; a request that ended otherwise is a 409."""
    for _ in range(_CANCEL_TRIES):
        row = await repository.get_state(pool, request_id, user.id)
        if row is None:
            raise NotFound("no such request")
        status = RequestStatus(row["status"])
        if status is RequestStatus.CANCELLED:
            return Cancellation(request_id, await ledger.refunded(pool, request_id))
        if status in FINAL_STATUSES:
            raise Conflict(f"the request has already {status.value}", status=status.value)
        async with pool.acquire() as conn, conn.transaction():
            if row["deal"]:
                rows = await cancel_request_steps(
                    conn,
                    request_id,
                    error=CANCELLED_ERROR,
                    streamed=await _streamed_steps(redis, request_id),
                )
            else:
                spent = None
                if await _streamed(redis, request_id):
                    spent = charged_when_cancelled_streaming(
                        price=row["price"],
                        pricing=row["pricing"],
                        input_texts=request_texts(row["prompt"], row["messages"]),
                        percent=row["tier_percent"],
                    )
                ended = Ended(
                    request_id, row["attempt"], "cancelled", error=CANCELLED_ERROR, spent=spent
                )
                rows = await record_outcomes(conn, ended=[ended])
        if rows:
            log.info("request.cancelled", request_id=str(request_id))
            await _announce_cancel(redis, request_id, rows)
            return Cancellation(request_id, await ledger.refunded(pool, request_id))
        # It ended, or a new attempt began, between the read and the write: look again.
    raise Conflict("the request changed while it was being cancelled; try again")


async def _streamed(redis: Redis, request_id: uuid.UUID) -> bool:
    """Whether the request's output has begun to stream: from its first chunk, what the client
    can read (now or by replaying the chunks) is delivered, and a cancel no longer refunds it.
    When Redis cannot tell, the client is given the benefit of the doubt."""
    try:
        return bool(await redis.exists(chunks_stream(request_id)))
    except (RedisError, OSError) as exc:
        log.warning("request.stream_unknown", request_id=str(request_id), error=repr(exc))
        return False


async def _streamed_steps(redis: Redis, request_id: uuid.UUID) -> set[int]:
    """The steps of a deal whose output has begun to stream (see ``_streamed``)."""
    try:
        members = await redis.smembers(streamed_steps_key(request_id))
    except (RedisError, OSError) as exc:
        log.warning("request.stream_unknown", request_id=str(request_id), error=repr(exc))
        return set()
    return {int(member) for member in members}


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
