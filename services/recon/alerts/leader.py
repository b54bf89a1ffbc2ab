"""One recon replica at a time sends alerts: the one holding a session-level advisory lock on a
connection of its own. When it dies, Postgres ends its session, the lock is free, and the next
replica to ask takes over."""

from __future__ import annotations

import contextlib

import asyncpg

from libs.db.pool import asyncpg_dsn
from libs.logs import get_logger

log = get_logger(__name__)

ALERTS_LOCK = 0x72656C61  # "rela"


class Leadership:
    def __init__(self, database_url: str, *, lock: int = ALERTS_LOCK) -> None:
        self._dsn = asyncpg_dsn(database_url)
        self._lock = lock
        self._conn: asyncpg.Connection | None = None

    async def is_leader(self) -> bool:
        """Whether this replica leads. When Postgres cannot be reached, every replica answers
        yes: alerts sent twice are better than none about the database itself."""
        if self._conn is not None:
            try:
                await self._conn.fetchval("SELECT 1")
                return True
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                await self.release()
        try:
            conn = await asyncpg.connect(self._dsn, timeout=5)
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            log.warning("leadership.unknown", error=repr(exc))
            return True
        try:
            leads = await conn.fetchval("SELECT pg_try_advisory_lock($1)", self._lock)
        except BaseException:
            # Cancelled (recon stopping) or failed before the connection was kept: close it
            # here, or it is left for the garbage collector.
            conn.terminate()
            raise
        if leads:
            self._conn = conn
            log.info("leadership.acquired")
            return True
        await conn.close()
        return False

    async def release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()
