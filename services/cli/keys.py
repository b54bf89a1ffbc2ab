"""``relai keys ...``: list, issue, revoke and rotate users' API keys."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer

from libs import accounts
from libs.db import PgConnection
from services.cli import local_stack
from services.cli._common import CliError, connect, reports_errors

app = typer.Typer(
    help="Manage API keys (only their hashes are stored; a key is shown once).",
    no_args_is_help=True,
    rich_markup_mode=None,
)

T = TypeVar("T")

UserOption = Annotated[str, typer.Option("--user", help="The user's name.")]
KeyIdArgument = Annotated[str, typer.Argument(help="The key's id, as `relai keys list` shows it.")]

REVOCATION_NOTE = "Running API processes trust a verified key for RELAI_AUTH_CACHE_TTL_S seconds."


def _run(action: Callable[[PgConnection], Awaitable[T]]) -> T:
    async def run() -> T:
        async with connect(local_stack.database_url()) as conn:
            try:
                return await action(conn)
            except (accounts.UnknownUserError, accounts.UnknownKeyError) as exc:
                raise CliError(str(exc)) from exc

    return asyncio.run(run())


def _key_id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError as exc:
        raise CliError(f"{value!r} is not a key id") from exc


@app.command("list")
@reports_errors
def list_(user: UserOption) -> None:
    """The user's keys, newest first."""
    for key in _run(lambda conn: accounts.list_keys(conn, user=user)):
        state = f"revoked {key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else "live"
        typer.echo(f"{key.id}  {key.prefix}…  created {key.created_at:%Y-%m-%d %H:%M}  {state}")


@app.command("create")
@reports_errors
def create(user: UserOption) -> None:
    """Issue the user another key; the others keep working."""
    key = _run(lambda conn: accounts.issue_key(conn, user=user))
    typer.echo(f"api key: {key}")
    typer.echo("The API key is shown only this once: store it now.", err=True)


@app.command("revoke")
@reports_errors
def revoke(key_id: KeyIdArgument) -> None:
    """Revoke a key."""
    parsed = _key_id(key_id)
    _run(lambda conn: accounts.revoke_key(conn, key_id=parsed))
    typer.echo(f"revoked {parsed}. {REVOCATION_NOTE}")


@app.command("rotate")
@reports_errors
def rotate(key_id: KeyIdArgument) -> None:
    """Revoke a live key and issue its user a new one, at once."""
    parsed = _key_id(key_id)
    key = _run(lambda conn: accounts.rotate_key(conn, key_id=parsed))
    typer.echo(f"api key: {key}")
    typer.echo(f"The old key is revoked. {REVOCATION_NOTE}", err=True)
