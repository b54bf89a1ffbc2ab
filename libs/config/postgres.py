"""The default store: the ``config_versions``, ``config_activations`` and ``configs`` tables."""

from __future__ import annotations

from collections.abc import Callable, Collection

import asyncpg

from libs.config._store import NOTIFY_CHANNEL, ConfigSummary, StoredVersion, checksum
from libs.config.errors import NothingToRollBackError, UnknownConfigError, VersionExistsError
from libs.db import PgConnection, PgPool, listen_forever
from libs.logs import get_logger

log = get_logger(__name__)

_VERSION_COLUMNS = """v.config_id, v.version, v.document, v.checksum, v.author, v.created_at,
    c.active_version IS NOT DISTINCT FROM v.version AS active"""


def _version(row: asyncpg.Record) -> StoredVersion:
    return StoredVersion(**dict(row))


class PostgresConfigStore:
    """A ``ConfigStore`` on the pool's database; activations are announced with NOTIFY."""

    def __init__(self, pool: PgPool, *, database_url: str, reconnect_s: float = 1.0) -> None:
        self._pool = pool
        self._database_url = database_url
        self._reconnect_s = reconnect_s

    async def upload(
        self, config_id: str, document: str, *, author: str, version: str | None = None
    ) -> StoredVersion:
        async with self._pool.acquire() as conn, conn.transaction():
            # The config's row serialises uploads of one id, so that numbering never races.
            await conn.execute(
                "INSERT INTO configs (id) VALUES ($1) ON CONFLICT (id) DO NOTHING", config_id
            )
            await conn.execute("SELECT 1 FROM configs WHERE id = $1 FOR UPDATE", config_id)
            if version is None:
                version = await self._next_version(conn, config_id)
            row = await conn.fetchrow(
                """INSERT INTO config_versions (config_id, version, document, checksum, author)
                VALUES ($1, $2, $3, $4, $5) ON CONFLICT (config_id, version) DO NOTHING
                RETURNING config_id, version, document, checksum, author, created_at""",
                config_id,
                version,
                document,
                checksum(document),
                author,
            )
            if row is None:
                raise VersionExistsError(config_id, version)
            return _version(row)

    @staticmethod
    async def _next_version(conn: PgConnection, config_id: str) -> str:
        taken = {
            r["version"]
            for r in await conn.fetch(
                "SELECT version FROM config_versions WHERE config_id = $1", config_id
            )
        }
        number = len(taken) + 1
        while str(number) in taken:
            number += 1
        return str(number)

    async def get(self, config_id: str, version: str | None = None) -> StoredVersion:
        if version is None:
            row = await self._pool.fetchrow(
                f"""SELECT {_VERSION_COLUMNS} FROM configs c JOIN config_versions v
                ON v.config_id = c.id AND v.version = c.active_version WHERE c.id = $1""",
                config_id,
            )
        else:
            row = await self._pool.fetchrow(
                f"""SELECT {_VERSION_COLUMNS} FROM config_versions v
                LEFT JOIN configs c ON c.id = v.config_id
                WHERE v.config_id = $1 AND v.version = $2""",
                config_id,
                version,
            )
        if row is None:
            raise UnknownConfigError(config_id, version or "active")
        return _version(row)

    async def versions(self, config_id: str) -> list[StoredVersion]:
        rows = await self._pool.fetch(
            f"""SELECT {_VERSION_COLUMNS} FROM config_versions v
            LEFT JOIN configs c ON c.id = v.config_id WHERE v.config_id = $1 ORDER BY v.id""",
            config_id,
        )
        if not rows:
            raise UnknownConfigError(config_id)
        return [_version(r) for r in rows]

    async def summaries(self) -> list[ConfigSummary]:
        rows = await self._pool.fetch(
            """SELECT c.id AS config_id, c.active_version, count(v.id) AS versions,
                (array_agg(v.version ORDER BY v.id DESC))[1] AS latest_version,
                greatest(c.updated_at, max(v.created_at)) AS updated_at
            FROM configs c JOIN config_versions v ON v.config_id = c.id
            GROUP BY c.id ORDER BY c.id"""
        )
        return [ConfigSummary(**dict(r)) for r in rows]

    async def active_versions(self, config_ids: Collection[str]) -> dict[str, str]:
        rows = await self._pool.fetch(
            """SELECT id, active_version FROM configs
            WHERE id = ANY($1::text[]) AND active_version IS NOT NULL""",
            list(config_ids),
        )
        return {r["id"]: r["active_version"] for r in rows}

    async def activate(self, config_id: str, version: str, *, author: str) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            current = await self._lock(conn, config_id)
            await self._activate(
                conn, config_id, version, author=author, previous=current["activation_id"]
            )

    async def rollback(self, config_id: str, *, author: str) -> str:
        async with self._pool.acquire() as conn, conn.transaction():
            current = await self._lock(conn, config_id)
            previous = await conn.fetchrow(
                """SELECT p.version, p.previous_id FROM config_activations a
                JOIN config_activations p ON p.id = a.previous_id WHERE a.id = $1""",
                current["activation_id"],
            )
            if previous is None:
                raise NothingToRollBackError(config_id)
            await self._activate(
                conn,
                config_id,
                previous["version"],
                author=author,
                previous=previous["previous_id"],
            )
            return str(previous["version"])

    @staticmethod
    async def _lock(conn: PgConnection, config_id: str) -> asyncpg.Record:
        row = await conn.fetchrow(
            "SELECT activation_id FROM configs WHERE id = $1 FOR UPDATE", config_id
        )
        if row is None:
            raise UnknownConfigError(config_id)
        return row

    @staticmethod
    async def _activate(
        conn: PgConnection, config_id: str, version: str, *, author: str, previous: int | None
    ) -> None:
        exists = await conn.fetchval(
            "SELECT 1 FROM config_versions WHERE config_id = $1 AND version = $2",
            config_id,
            version,
        )
        if exists is None:
            raise UnknownConfigError(config_id, version)
        activation = await conn.fetchval(
            """INSERT INTO config_activations (config_id, version, previous_id, author)
            VALUES ($1, $2, $3, $4) RETURNING id""",
            config_id,
            version,
            previous,
            author,
        )
        await conn.execute(
            """UPDATE configs SET active_version = $2, activation_id = $3, updated_at = now()
            WHERE id = $1""",
            config_id,
            version,
            activation,
        )
        await conn.execute("SELECT pg_notify($1, $2)", NOTIFY_CHANNEL, config_id)

    async def rewrite_all(self, transform: Callable[[StoredVersion], str]) -> int:
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                f"""SELECT v.id, {_VERSION_COLUMNS} FROM config_versions v
                LEFT JOIN configs c ON c.id = v.config_id ORDER BY v.id FOR UPDATE OF v"""
            )
            updates: list[tuple[int, str, str]] = []
            for row in rows:
                fields = dict(row)
                row_id = fields.pop("id")
                document = transform(StoredVersion(**fields))
                updates.append((row_id, document, checksum(document)))
            await conn.executemany(
                "UPDATE config_versions SET document = $2, checksum = $3 WHERE id = $1", updates
            )
            return len(updates)

    async def watch(self, on_change: Callable[[str], None]) -> None:
        await listen_forever(
            self._database_url,
            NOTIFY_CHANNEL,
            on_change,
            reconnect_s=self._reconnect_s,
            name="config",
        )

    async def close(self) -> None:
        """The pool belongs to whoever made it."""
