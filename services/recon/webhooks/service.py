"""What recon does about webhooks: it notices endpoints newly disabled (for the alert loop), and
deletes finished deliveries past their retention."""

from __future__ import annotations

import asyncio
import uuid
from collections import deque
from collections.abc import Callable

from libs.db import DATABASE_ERRORS, PgPool
from libs.logs import get_logger
from libs.loops import every
from services.recon.webhooks import repository

log = get_logger(__name__)

_LOOK_ERRORS: tuple[type[Exception], ...] = (*DATABASE_ERRORS, TimeoutError)


class NewlyDisabled:
    """How many endpoints were disabled since the previous look, summed over the look-back.

    An endpoint is new when it is disabled now and was not at the previous look; what was
    disabled before the first look is not news (as with dead letters), so a replica that takes
    over the alerts does not announce the old ones again. A look that cannot read Postgres
    changes nothing (Postgres unreachable is an alert of its own)."""

    def __init__(self, *, look_back_s: float, clock: Callable[[], float]) -> None:
        self._look_back_s = look_back_s
        self._clock = clock
        self._seen: set[uuid.UUID] | None = None
        self._events: deque[tuple[float, int]] = deque()
        """(time, endpoints newly disabled) over the look-back window."""

    async def look(self, pool: PgPool, *, timeout: float) -> int:
        now = self._clock()
        try:
            async with asyncio.timeout(timeout), pool.acquire() as conn:
                disabled = await repository.disabled_endpoints(conn)
        except _LOOK_ERRORS as exc:
            log.warning("webhooks.disabled_look_failed", error=f"{type(exc).__name__}: {exc}")
        else:
            if self._seen is not None and (new := len(disabled - self._seen)):
                self._events.append((now, new))
            self._seen = disabled
        while self._events and self._events[0][0] < now - self._look_back_s:
            self._events.popleft()
        return sum(count for _, count in self._events)


class WebhookRetentionLoop:
    """Every so often, delete the deliveries delivered or given up more than ``retention_s`` ago
    (their attempts go with them), batch after batch until none is left; never a pending one.
    Each batch is its own transaction and skips the rows another holds, so replicas share the
    work instead of waiting on each other."""

    def __init__(self, pool: PgPool, *, interval_s: float, retention_s: float, batch: int) -> None:
        self._pool = pool
        self._interval_s = interval_s
        self._retention_s = retention_s
        self._batch = batch

    async def run_forever(self) -> None:
        await every(
            self._interval_s, self.run_once, name="webhook_retention", expected=DATABASE_ERRORS
        )

    async def run_once(self) -> int:
        """Delete what is due; returns how many deliveries this replica deleted."""
        total = 0
        for status in repository.FINISHED_STATUSES:
            while True:
                async with self._pool.acquire() as conn, conn.transaction():
                    deleted = await repository.delete_finished(
                        conn, status=status, older_than_s=self._retention_s, limit=self._batch
                    )
                total += deleted
                if deleted < self._batch:
                    break
        if total:
            log.info("webhooks.deliveries_deleted", count=total)
        return total
