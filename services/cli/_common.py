"""What every command shares: one error type that becomes a message and an exit status, and a
short-lived connection pool that turns connection failures into such errors."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import wraps
from typing import Literal, ParamSpec, TypeVar

import asyncpg
import typer
from sqlalchemy.engine import make_url

from libs.db import PgConnection, create_pool

P = ParamSpec("P")
R = TypeVar("R")


class CliError(Exception):
    """A failure the operator can act on: printed as ``error: <message>``, exit status 1."""


def reports_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Turn a ``CliError`` raised by ``command`` into a message on stderr and exit status 1."""

    @wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except CliError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from exc

    return wrapper


def display_url(url: str) -> str:
    """``url`` with any password masked, fit for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparsable URL>"


@asynccontextmanager
async def connect(database_url: str, *, snapshot: bool = False) -> AsyncIterator[PgConnection]:
    """One connection, set up as every Relai pool sets its connections up (jsonb codec), in the
    command's transaction: what a command writes commits when it ends, and nothing of it when it
    fails. ``snapshot``: a read-only transaction that sees the database as of one instant."""
    try:
        pool = await create_pool(database_url, min_size=1, max_size=1)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise CliError(f"cannot connect to Postgres at {display_url(database_url)}: {exc}") from exc
    try:
        isolation: Literal["repeatable_read"] | None = "repeatable_read" if snapshot else None
        async with pool.acquire() as conn, conn.transaction(isolation=isolation, readonly=snapshot):
            yield conn
    except asyncpg.UndefinedTableError as exc:
        raise CliError(f"the database has no Relai schema ({exc}): run `relai migrate`") from exc
    finally:
        await pool.close()
