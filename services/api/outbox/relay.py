"""The outbox relay: publishes committed outbox rows to their Redis stream.

Each batch is taken with ``FOR UPDATE SKIP LOCKED`` and deleted in the same transaction that
publishes it, so concurrent relays (one per API process) never publish a row twice. If the
process dies after ``XADD`` but before ``COMMIT`` the rows are published again: delivery is
at-least-once and every consumer tolerates a second copy.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from libs import outbox
from libs.contracts.streams import MESSAGE_FIELD
from libs.db import OUTBOX_CHANNEL, listen_forever
from libs.logs import get_logger
from libs.telemetry import batch_spans, tracing_enabled
from services.api.metrics import OUTBOX_PUBLISHED, RELAY_LAG

log = get_logger(__name__)


class OutboxRelay:
    def __init__(
        self,
        pool: asyncpg.Pool[Any],
        redis: Redis,
        *,
        database_url: str,
        batch: int,
        poll_s: float,
    ) -> None:
        self._pool = pool
        self._redis = redis
        self._database_url = database_url
        self._batch = batch
        self._poll_s = poll_s
        self._wake = asyncio.Event()
        self.published = 0

    def wake(self) -> None:
        """Publish now: this process has just committed outbox rows. (Rows committed
        elsewhere arrive by notification, or by the poll.)"""
        self._wake.set()

    async def publish_batch(self) -> int:
        """Publish up to one batch; returns how many rows went out."""
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await outbox.take(conn, self._batch)
            if not rows:
                return 0
            with batch_spans("relai.relay.publish", _traceparents(rows)):
                pipe = self._redis.pipeline(transaction=False)
                for row in sorted(rows, key=lambda r: r["id"]):
                    pipe.xadd(row["stream"], {MESSAGE_FIELD: row["payload"]})
                await pipe.execute()
        self.published += len(rows)
        OUTBOX_PUBLISHED.inc(len(rows))
        for row in rows:
            RELAY_LAG.observe(row["age"])
        return len(rows)

    async def drain(self) -> int:
        total = 0
        while (n := await self.publish_batch()) > 0:
            total += n
            if n < self._batch:
                break
        return total

    async def run(self) -> None:
        """Publish forever: at once when notified, and every ``poll_s`` regardless."""
        listener = asyncio.create_task(self._listen(), name="outbox-listener")
        try:
            while True:
                self._wake.clear()
                try:
                    await self.drain()
                except (OSError, asyncpg.PostgresError, RedisError) as exc:
                    log.warning("relay publish failed; retrying", error=repr(exc))
                    await asyncio.sleep(min(self._poll_s, 1.0))
                    continue
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=self._poll_s)
                except TimeoutError:
                    pass
        finally:
            listener.cancel()

    async def _listen(self) -> None:
        """Wake at every notification, and whenever listening (re)starts."""
        await listen_forever(
            self._database_url,
            OUTBOX_CHANNEL,
            lambda _payload: self._wake.set(),
            reconnect_s=self._poll_s,
            name="outbox",
            on_listening=lambda now: self._wake.set() if now else None,
        )


def _traceparents(rows: list[asyncpg.Record]) -> list[str | None]:
    """The trace of each row's request, read from its message (only when tracing is on)."""
    if not tracing_enabled():
        return []
    found: list[str | None] = []
    for row in rows:
        try:
            found.append(orjson.loads(row["payload"]).get("traceparent"))
        except (orjson.JSONDecodeError, AttributeError):
            found.append(None)
    return found
