"""Following one request from an HTTP answer: its chunks as the worker writes them, then its
final state, read the way the WebSocket reads them (``relai:chunks:{id}`` and the hub's events),
from any API replica.

A client that goes away stops the following, never the request: it is in Postgres already and
ends whether anyone waits for it or not."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
from pydantic import ValidationError
from redis.asyncio import Redis
from redis.exceptions import RedisError

from libs.contracts import FINAL_STATUSES, ChunkMessage, RequestStatus, chunks_stream
from libs.db import PgPool
from libs.logs import get_logger
from libs.streams import decode, entries_of
from services.api.submission import reads as repository
from services.api.ws.hub import Hub, Subscription

log = get_logger(__name__)

_READ_COUNT = 500
_RECHECK_S = 2.0
"""How often the request's row is read when no event came (one may be lost while the hub
resubscribes)."""
KEEPALIVE_S = 15.0
"""The longest a follower stays silent: a ``Tick`` then lets the answer write a comment, which
keeps proxies from closing an idle stream and tells the server when the client has gone."""


@dataclass(frozen=True, slots=True)
class Chunk:
    event_id: str
    attempt: int
    text: str
    index: int | None
    """Its place in its execution's output (``ChunkMessage.index``)."""

    def starts_over(self, attempt: int | None, sent: int) -> bool:
        """Whether this chunk begins another execution's output, after ``sent`` chunks of
        ``attempt`` were passed on."""
        if attempt is not None and self.attempt != attempt:
            return True
        return self.index is not None and self.index != sent


@dataclass(frozen=True, slots=True)
class Tick:
    """Nothing happened for ``KEEPALIVE_S``."""


@dataclass(frozen=True, slots=True)
class Final:
    row: asyncpg.Record
    """The request's view (``services.api.submission.reads``): status, results, usage..."""

    @property
    def status(self) -> RequestStatus:
        return RequestStatus(self.row["status"])


class StillRunning(Exception):
    """The request did not end within the wait; it goes on, and stays retrievable."""


async def read_chunks(redis: Redis, request_id: uuid.UUID, after: str) -> list[Chunk]:
    """The request's chunks after event id ``after``, oldest first (none when Redis cannot
    tell: the final state, from Postgres, still comes)."""
    try:
        reply = await redis.xread({chunks_stream(request_id): after}, count=_READ_COUNT)
    except (RedisError, OSError) as exc:
        log.warning("chunks.unreadable", request_id=str(request_id), error=repr(exc))
        return []
    chunks: list[Chunk] = []
    for entry_id, fields in entries_of(reply):
        try:
            message = decode(ChunkMessage, fields)
        except (ValidationError, KeyError) as exc:
            log.error("dropping malformed chunk", error=str(exc))
            continue
        if message.step is None:
            chunks.append(Chunk(entry_id.decode(), message.attempt, message.text, message.index))
    return chunks


async def follow(
    pool: PgPool,
    redis: Redis,
    hub: Hub,
    request_id: uuid.UUID,
    user_id: uuid.UUID,
    *,
    wait_s: float,
    after: str = "0-0",
    chunks: bool = True,
) -> AsyncIterator[Chunk | Tick | Final]:
    """The request's chunks after ``after`` (when ``chunks``), ``Tick`` when idle, and last its
    ``Final`` state (every chunk written before it ended comes before it). ``StillRunning``
    after ``wait_s`` seconds."""
    deadline = time.monotonic() + wait_s
    last = after
    with hub.watch_request(request_id) as events, hub.watch_chunks(request_id) as wake:
        check_row = True
        quiet_since = time.monotonic()
        while True:
            wake.clear()
            while chunks and (batch := await read_chunks(redis, request_id, last)):
                for chunk in batch:
                    yield chunk
                last = batch[-1].event_id
                quiet_since = time.monotonic()
            if check_row and (row := await _final_row(pool, request_id, user_id)) is not None:
                for chunk in await read_chunks(redis, request_id, last) if chunks else ():
                    yield chunk
                yield Final(row)
                return
            now = time.monotonic()
            if now >= deadline:
                raise StillRunning(f"request {request_id} is still running")
            if now - quiet_since >= KEEPALIVE_S:
                yield Tick()
                quiet_since = now
            timeout = min(_RECHECK_S, deadline - now)
            check_row = await _changed(events, wake if chunks else None, timeout)


async def _final_row(
    pool: PgPool, request_id: uuid.UUID, user_id: uuid.UUID
) -> asyncpg.Record | None:
    row = await repository.get_view(pool, request_id, user_id)
    if row is None:  # pragma: no cover - requests are never deleted under a client
        raise StillRunning(f"request {request_id} is gone")
    return row if RequestStatus(row["status"]) in FINAL_STATUSES else None


async def _changed(events: Subscription, wake: asyncio.Event | None, timeout: float) -> bool:
    """Wait for an event of the request (True: read its row again), new chunks (False), or the
    timeout (True)."""
    event_task: asyncio.Task[Any] = asyncio.create_task(events.next_batch())
    waiters: set[asyncio.Task[Any]] = {event_task}
    if wake is not None:
        waiters.add(asyncio.create_task(wake.wait()))
    try:
        done, _ = await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)
    return event_task in done or not done
