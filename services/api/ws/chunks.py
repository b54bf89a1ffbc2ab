"""A request's partial output for one WebSocket: the chunks on ``relai:chunks:{id}`` after a
given event id, live, and then whatever is left once the request has ended.

Chunks and state changes go out through one lock, so that the final state is always sent after
the last chunk, and a chunk is sent exactly once: the feed only moves ``last`` past a chunk
once that chunk has been sent.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Awaitable, Callable

import orjson
from pydantic import ValidationError
from redis.asyncio import Redis

from libs.contracts import ChunkMessage, chunks_stream
from libs.logs import get_logger
from libs.loops import cancel_and_wait
from libs.streams import decode, entries_of

log = get_logger(__name__)

EVENT_ID = re.compile(r"^\d{1,20}-\d{1,20}$")
_READ_COUNT = 500
_POLL_S = 1.0
"""How often a socket reads its chunks when no notice came (one lost while resubscribing)."""

Send = Callable[[str], Awaitable[None]]


def chunk_event(request_id: uuid.UUID, event_id: str, chunk: ChunkMessage) -> str:
    return orjson.dumps(
        {
            "id": str(request_id),
            "event": "chunk",
            "event_id": event_id,
            "attempt": chunk.attempt,
            "text": chunk.text,
        }
    ).decode()


class ChunkFeed:
    def __init__(
        self,
        redis: Redis,
        request_id: uuid.UUID,
        *,
        after: str,
        send: Send,
        wake: asyncio.Event | None = None,
    ) -> None:
        self._redis = redis
        self._wake = wake or asyncio.Event()
        self._request_id = request_id
        self._key = chunks_stream(request_id)
        self.last = after
        self._send = send
        self.lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._pump(), name=f"chunks-{self._request_id}")

    async def _read(self) -> list[tuple[str, ChunkMessage]]:
        reply = await self._redis.xread({self._key: self.last}, count=_READ_COUNT)
        chunks: list[tuple[str, ChunkMessage]] = []
        for entry_id, fields in entries_of(reply):
            try:
                chunks.append((entry_id.decode(), decode(ChunkMessage, fields)))
            except (ValidationError, KeyError) as exc:
                log.error("dropping malformed chunk", error=str(exc))
        return chunks

    async def _send_all(self, chunks: list[tuple[str, ChunkMessage]]) -> None:
        for event_id, chunk in chunks:
            await self._send(chunk_event(self._request_id, event_id, chunk))
            self.last = event_id

    async def _pump(self) -> None:
        # The flag as well as the cancel: a cancel can be lost (the Redis client swallows one
        # that comes mid-read, Python 3.11's wait_for one that comes as its wait ends), and
        # ``stop`` would then wait forever for a pump that goes on.
        while not self._stopping:
            # ``finish`` cancels the pump outside the lock only: chunks read but not sent are
            # read again by ``drain``, from ``last``.
            self._wake.clear()
            while (chunks := await self._read()) and not self._stopping:
                async with self.lock:
                    await self._send_all(chunks)
            if self._stopping:
                return
            try:
                await asyncio.wait_for(self._wake.wait(), _POLL_S)
            except TimeoutError:
                pass

    async def drain(self) -> None:
        """Send every chunk after ``last`` that is in Redis now."""
        while chunks := await self._read():
            async with self.lock:
                await self._send_all(chunks)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        async with self.lock:
            self._stopping = True
            task.cancel()
        await cancel_and_wait([task])

    async def finish(self) -> None:
        """Stop following and send the rest: called before the final state goes out."""
        await self.stop()
        await self.drain()
