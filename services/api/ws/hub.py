"""The WebSocket hub of one API process.

Every replica subscribes to the events channel and delivers each event to its own sockets
watching that request or that user. A socket that falls ``queue_size`` events behind is
marked overflowed and closed; on reconnect it gets the current state again. It also counts the
sockets each user holds open on this process, at most ``max_per_user``.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter, defaultdict, deque
from collections.abc import Iterator
from contextlib import contextmanager

from pydantic import ValidationError
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from libs.contracts import CHUNKS_CHANNEL, EVENT_BATCH, EVENTS_CHANNEL, RequestEvent
from libs.logs import get_logger
from libs.telemetry import span, tracing_enabled

log = get_logger(__name__)


class Subscription:
    """Events for one socket, taken in batches: one wake-up per batch, however many arrived."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._events: deque[RequestEvent] = deque()
        self._ready = asyncio.Event()
        self.overflowed = False
        self.closed = False

    def push(self, event: RequestEvent) -> None:
        if len(self._events) >= self._size:
            self.overflowed = True
        else:
            self._events.append(event)
        self._ready.set()

    def close(self) -> None:
        self.closed = True
        self._ready.set()

    async def next_batch(self) -> list[RequestEvent]:
        """What arrived since the last call, waiting for at least one event; empty once the
        subscription overflowed or was closed."""
        while not (self._events or self.overflowed or self.closed):
            self._ready.clear()
            await self._ready.wait()
        if self.overflowed or self.closed:
            return []
        batch = list(self._events)
        self._events.clear()
        return batch


class Hub:
    def __init__(self, redis: Redis, *, queue_size: int, max_per_user: int = 0) -> None:
        self._redis = redis
        self._queue_size = queue_size
        self.max_per_user = max_per_user
        """Most sockets a user may hold open on this process; 0: no cap."""
        self._sockets: Counter[uuid.UUID] = Counter()
        self._by_request: defaultdict[uuid.UUID, set[Subscription]] = defaultdict(set)
        self._by_user: defaultdict[uuid.UUID, set[Subscription]] = defaultdict(set)
        self._chunks: defaultdict[uuid.UUID, set[asyncio.Event]] = defaultdict(set)

    def hold_socket(self, user_id: uuid.UUID) -> bool:
        """Count one more open socket of the user's, unless they hold ``max_per_user`` already
        (False). Each True is paired with one ``release_socket``."""
        if self.max_per_user and self._sockets[user_id] >= self.max_per_user:
            return False
        self._sockets[user_id] += 1
        return True

    def release_socket(self, user_id: uuid.UUID) -> None:
        self._sockets[user_id] -= 1
        if self._sockets[user_id] <= 0:
            del self._sockets[user_id]

    @contextmanager
    def watch_request(self, request_id: uuid.UUID) -> Iterator[Subscription]:
        with self._watch(self._by_request, request_id) as sub:
            yield sub

    @contextmanager
    def watch_user(self, user_id: uuid.UUID) -> Iterator[Subscription]:
        with self._watch(self._by_user, user_id) as sub:
            yield sub

    @contextmanager
    def watch_chunks(self, request_id: uuid.UUID) -> Iterator[asyncio.Event]:
        """An event set whenever the request has new chunks (see ``ws.chunks``)."""
        event = asyncio.Event()
        self._chunks[request_id].add(event)
        try:
            yield event
        finally:
            events = self._chunks.get(request_id)
            if events is not None:
                events.discard(event)
                if not events:
                    del self._chunks[request_id]

    def _chunks_arrived(self, data: bytes) -> None:
        try:
            request_id = uuid.UUID(data.decode())
        except ValueError:
            log.error("dropping malformed chunk notice", data=repr(data)[:100])
            return
        for event in self._chunks.get(request_id, ()):
            event.set()

    @contextmanager
    def _watch(
        self, index: defaultdict[uuid.UUID, set[Subscription]], key: uuid.UUID
    ) -> Iterator[Subscription]:
        sub = Subscription(self._queue_size)
        index[key].add(sub)
        try:
            yield sub
        finally:
            subs = index.get(key)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del index[key]

    def dispatch(self, events: list[RequestEvent]) -> None:
        traced = tracing_enabled()
        for event in events:
            by_request = self._by_request.get(event.request_id, ())
            by_user = self._by_user.get(event.user_id, ())
            if traced and (by_request or by_user):
                self._push_traced(event, [*by_request, *by_user])
                continue
            for sub in by_request:
                sub.push(event)
            for sub in by_user:
                sub.push(event)

    @staticmethod
    def _push_traced(event: RequestEvent, subs: list[Subscription]) -> None:
        attributes: dict[str, str | int] = {
            "relai.status": str(event.status),
            "relai.sockets": len(subs),
        }
        with span("relai.ws.push", traceparent=event.traceparent, attributes=attributes):
            for sub in subs:
                sub.push(event)

    async def run(self) -> None:
        """Listen to the events channel forever, resubscribing after a lost connection."""
        while True:
            try:
                async with self._redis.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(EVENTS_CHANNEL, CHUNKS_CHANNEL)
                    async for message in pubsub.listen():
                        if message["channel"] == CHUNKS_CHANNEL.encode():
                            self._chunks_arrived(message["data"])
                            continue
                        if not (self._by_request or self._by_user):
                            continue
                        try:
                            self.dispatch(EVENT_BATCH.validate_json(message["data"]))
                        except ValidationError as exc:
                            log.error("dropping malformed event batch", error=str(exc))
            except (RedisConnectionError, OSError) as exc:
                log.warning("events subscription lost; resubscribing", error=repr(exc))
                await asyncio.sleep(0.5)
