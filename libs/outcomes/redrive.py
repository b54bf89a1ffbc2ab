"""Re-driving a request whose job was lost: its next attempt recorded and its task queued
through the outbox, in the caller's transaction. Recon's completion loop re-drives what stalled;
an admin may re-drive one request at once (``POST /admin/requests/{id}/redrive``). Both lock the
request first and leave it alone when it has an outbox row (the relay has not published it
yet), and both look first at ``in_flight`` (a message on the streams, or a job under an
integration's limits): re-driving live work would run it twice."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import cast

import orjson
from asyncpg import Record
from redis.asyncio import Redis

from libs import outbox
from libs.catalog.models import route_from, route_sql
from libs.contracts import LIMITS_LIVE_KEY
from libs.contracts.streams import MESSAGE_FIELD
from libs.db import PgConnection
from libs.files.uploads import file_refs, input_files_json
from libs.streams import Entry

# Locks the request, unfinished and without an outbox row; with $2, only if it is exactly as a
# scan saw it: another replica that got there first, or any progress meanwhile, changed
# updated_at (or holds the lock). Its input files go on the task again, as its first run had
# them.
_LOCK = f"""
SELECT r.id, r.user_id, r.attempt, r.prompt, r.traceparent, o.handler_id, o.create_qty,
       h.params || o.params AS params, r.messages, r.options, {input_files_json("r.id")} AS files,
       r.tier, {route_sql("r.model", "r.model_version", "o.fallbacks")} AS route
FROM requests r JOIN offers o ON o.id = r.offer_id JOIN handlers h ON h.id = o.handler_id
WHERE r.id = $1 AND ($2::timestamptz IS NULL OR r.updated_at = $2)
  AND r.status IN ('pending', 'running')
  AND NOT EXISTS (SELECT 1 FROM outbox ob WHERE ob.request_id = r.id)
FOR UPDATE OF r SKIP LOCKED
"""

_REDRIVE = f"""
WITH bumped AS (
    UPDATE requests SET attempt = $2, updated_at = now() WHERE id = $1
    RETURNING id AS request_id, $3::text AS payload
), {outbox.queue("bumped")}
SELECT 1
"""

_LOCK_DEAL = """
SELECT r.id FROM requests r
WHERE r.id = $1 AND ($2::timestamptz IS NULL OR r.updated_at = $2)
  AND r.status IN ('pending', 'running')
  AND r.deal_id IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM outbox ob WHERE ob.request_id = r.id)
FOR UPDATE OF r SKIP LOCKED
"""

# A deal's steps that were queued (they have a prompt) and have not ended: those a worker lost.
_OPEN_STEPS = f"""
SELECT s.idx, s.attempt, s.prompt, r.traceparent, o.handler_id, o.create_qty,
       h.params || o.params AS params,
       {route_sql("o.model", "o.model_version", "o.fallbacks")} AS route
FROM request_steps s JOIN requests r ON r.id = s.request_id
JOIN offers o ON o.id = s.offer_id JOIN handlers h ON h.id = o.handler_id
WHERE s.request_id = $1 AND s.prompt IS NOT NULL AND s.status IN ('pending', 'running')
ORDER BY s.idx
"""

_REDRIVE_STEP = f"""
WITH bumped AS (
    UPDATE request_steps SET attempt = $3, updated_at = now()
    WHERE request_id = $1 AND idx = $2 RETURNING request_id, $4::text AS payload
), touched AS (
    UPDATE requests SET updated_at = now() WHERE id = $1
), {outbox.queue("bumped")}
SELECT 1
"""


@dataclass(frozen=True, slots=True)
class OpenStep:
    idx: int
    attempt: int
    traceparent: str | None
    run: outbox.Run


@dataclass(frozen=True, slots=True)
class Locked:
    id: uuid.UUID
    attempt: int
    traceparent: str | None
    run: outbox.Run
    user_id: uuid.UUID | None = None


def _run(row: Record) -> outbox.Run:
    chat = {"messages": row["messages"], "options": row["options"]} if "messages" in row else {}
    files = file_refs(row["files"]) if "files" in row else None
    tier = {"tier": row["tier"]} if "tier" in row else {}
    return outbox.Run(
        row["handler_id"],
        row["prompt"],
        row["params"],
        row["create_qty"],
        files=files,
        route=route_from(row["route"]),
        **chat,
        **tier,
    )


async def lock_request(
    conn: PgConnection, request_id: uuid.UUID, *, updated_at: datetime | None = None
) -> Locked | None:
    """The request (not a deal's), locked for this transaction; None if it ended, has an
    outbox row, another transaction holds it, or (``updated_at``) it moved since."""
    row = await conn.fetchrow(_LOCK, request_id, updated_at)
    if row is None:
        return None
    return Locked(row["id"], row["attempt"], row["traceparent"], _run(row), row["user_id"])


async def redrive(conn: PgConnection, request: Locked) -> None:
    """Record the request's next attempt and queue its task, in the caller's transaction."""
    payload = outbox.redrive(
        request.run,
        request_id=request.id,
        traceparent=request.traceparent,
        attempt=request.attempt + 1,
        user_id=request.user_id,
    )
    await conn.execute(_REDRIVE, request.id, request.attempt + 1, payload)


async def lock_deal(
    conn: PgConnection, request_id: uuid.UUID, *, updated_at: datetime | None = None
) -> bool:
    """Lock a deal's request for this transaction, as ``lock_request``; False if it cannot."""
    return await conn.fetchval(_LOCK_DEAL, request_id, updated_at) is not None


async def open_steps(conn: PgConnection, request_id: uuid.UUID) -> list[OpenStep]:
    rows = await conn.fetch(_OPEN_STEPS, request_id)
    return [OpenStep(r["idx"], r["attempt"], r["traceparent"], _run(r)) for r in rows]


async def redrive_step(conn: PgConnection, request_id: uuid.UUID, step: OpenStep) -> None:
    """Record the step's next attempt and queue its task, in the caller's transaction."""
    payload = outbox.redrive(
        step.run,
        request_id=request_id,
        traceparent=step.traceparent,
        attempt=step.attempt + 1,
        step=step.idx,
    )
    await conn.execute(_REDRIVE_STEP, request_id, step.idx, step.attempt + 1, payload)


async def in_flight(redis: Redis, streams: Iterable[str], *, chunk: int = 1000) -> set[uuid.UUID]:
    """Request ids named by any entry of ``streams``, read whole with ``XRANGE`` in chunks, and
    those whose job waits for or runs under an integration's limits (off the streams)."""
    live: set[uuid.UUID] = set()
    for member in await redis.smembers(LIMITS_LIVE_KEY):
        try:
            live.add(uuid.UUID(member.decode() if isinstance(member, bytes) else member))
        except ValueError:
            pass
    for stream in streams:
        start: bytes = b"-"
        while True:
            reply = await redis.xrange(stream, min=start, max="+", count=chunk)
            entries = cast(list[Entry], reply or [])
            for _entry_id, fields in entries:
                request_id = message_request_id(fields)
                if request_id is not None:
                    live.add(request_id)
            if len(entries) < chunk:
                break
            start = b"(" + entries[-1][0]
    return live


def message_request_id(fields: dict[bytes, bytes]) -> uuid.UUID | None:
    """The request a stream entry's message names, if it names one."""
    try:
        return uuid.UUID(orjson.loads(fields[MESSAGE_FIELD])["request_id"])
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
