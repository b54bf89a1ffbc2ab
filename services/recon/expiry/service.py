"""The expiry loop: every few seconds, expire what is due (``libs.outcomes.expire_due``), batch
after batch until nothing is left, and tell the API replicas so watchers see it."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
from redis.asyncio import Redis
from redis.exceptions import RedisError

from libs.contracts import EVENT_BATCH, EVENTS_CHANNEL
from libs.db import DATABASE_ERRORS, PgPool
from libs.logs import get_logger
from libs.loops import every
from libs.outcomes import events_of, expire_due
from services.recon.expiry.schemas import ExpiryReport

log = get_logger(__name__)


class ExpiryLoop:
    def __init__(self, pool: PgPool, redis: Redis, *, interval_s: float, batch: int) -> None:
        self._pool = pool
        self._redis = redis
        self._interval_s = interval_s
        self._batch = batch
        self._expired = 0
        self._last_run_at: datetime | None = None

    def report(self) -> ExpiryReport:
        return ExpiryReport(last_run_at=self._last_run_at, expired=self._expired)

    async def run_forever(self) -> None:
        await every(self._interval_s, self.run_once, name="expiry", expected=DATABASE_ERRORS)

    async def run_once(self) -> int:
        """Expire everything due; returns how many requests expired."""
        total = 0
        while True:
            async with self._pool.acquire() as conn, conn.transaction():
                rows = await expire_due(conn, limit=self._batch)
            total += len(rows)
            self._expired += len(rows)
            if rows:
                log.info("requests.expired", count=len(rows))
                await self._announce(rows)
            if len(rows) < self._batch:
                break
        self._last_run_at = datetime.now(UTC)
        return total

    async def _announce(self, rows: list[asyncpg.Record]) -> None:
        try:
            await self._redis.publish(
                EVENTS_CHANNEL, EVENT_BATCH.dump_json(events_of(rows), exclude_none=True)
            )
        except (RedisError, OSError) as exc:
            log.warning("expiry.announce_failed", error=repr(exc))
