from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import asyncpg
import orjson

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    PgPool = asyncpg.Pool[asyncpg.Record]
    PgConnection = asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]
else:  # asyncpg's classes are generic only in its type stubs
    PgPool = asyncpg.Pool
    PgConnection = asyncpg.Connection

DATABASE_ERRORS: tuple[type[Exception], ...] = (
    OSError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
)
"""What a query raises when Postgres is away or refuses it: worth a warning, not a traceback."""


_SCHEME = re.compile(r"^postgres(?:ql)?(?:\+[a-z0-9_]+)?://", re.IGNORECASE)


def asyncpg_dsn(url: str) -> str:
    """The DSN asyncpg understands, from any SQLAlchemy-style Postgres URL: the same URL with
    the plain ``postgresql://`` scheme (no driver). Read without SQLAlchemy, which every
    process would otherwise import at start only for this."""
    if not _SCHEME.match(url):
        raise ValueError(f"not a PostgreSQL URL: {url.split('://', 1)[0]}://...")
    return _SCHEME.sub("postgresql://", url, count=1)


def sqlalchemy_url(url: str) -> str:
    """The SQLAlchemy async URL (asyncpg driver) for a Postgres URL, as Alembic needs it."""
    from sqlalchemy.engine import make_url

    return make_url(url).set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


async def _init_connection(conn: asyncpg.Connection[Any]) -> None:
    # jsonb travels as text both ways; callers pass and receive JSON documents as Python values.
    await conn.set_type_codec("jsonb", encoder=_dumps, decoder=orjson.loads, schema="pg_catalog")


async def _keep_session(conn: asyncpg.Connection[Any]) -> None:
    """Release without asyncpg's reset round trip (UNLISTEN, RESET ALL...): pooled connections
    never change session state, and the reset query cost a round trip on every release."""


async def create_pool(
    url: str, *, min_size: int = 2, max_size: int = 10, pooled: bool = False
) -> asyncpg.Pool[Any]:
    """The process's pool on ``url``. ``pooled``: ``url`` is a transaction pooler (PgBouncer
    ``pool_mode = transaction``), where consecutive transactions of one client connection may
    run on different server connections: no prepared statement may outlive its transaction, so
    asyncpg's statement cache is off (each query is prepared unnamed, in the same round trip
    as its execution). Nothing here sets session state, so nothing else changes."""
    pool = await asyncpg.create_pool(
        asyncpg_dsn(url),
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        reset=_keep_session,
        statement_cache_size=0 if pooled else 100,
    )
    assert pool is not None
    return pool


OUTBOX_CHANNEL = "relai_outbox"
"""Postgres channel notified (by a trigger) whenever outbox rows commit."""


async def recreate_database(url: str) -> None:
    """Drop the database named by ``url`` (disconnecting its sessions) and create it empty.
    For test suites and benchmarks, which own their database."""
    from sqlalchemy.engine import make_url

    target = make_url(url)
    admin = await asyncpg.connect(
        asyncpg_dsn(target.set(database="postgres").render_as_string(hide_password=False))
    )
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{target.database}"')
    finally:
        await admin.close()
