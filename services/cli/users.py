"""``relai users ...``: create users and issue API keys."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Literal

import typer

from libs.accounts import (
    NewUser,
    UnknownUserError,
    UserExistsError,
    add_api_key,
    check_user_name,
    create_user,
    grant_credits,
)
from libs.db import PgConnection
from services.cli import local_stack
from services.cli._common import CliError, connect, reports_errors

app = typer.Typer(
    help="Manage users and their API keys.", no_args_is_help=True, rich_markup_mode=None
)


async def _create(
    database_url: str, *, name: str, credits: int, role: Literal["user", "admin"]
) -> NewUser:
    async with connect(database_url) as conn:
        try:
            return await create_user(conn, name=name, credits=credits, role=role)
        except UserExistsError as exc:
            raise CliError(str(exc)) from exc


async def ensure_user_key(conn: PgConnection, *, name: str, credits: int) -> str:
    """A fresh API key for the user ``name``, creating the user with ``credits`` if needed."""
    try:
        async with conn.transaction():  # a savepoint: its failure leaves the caller's intact
            return (await create_user(conn, name=name, credits=credits)).api_key
    except UserExistsError:
        user_id = await conn.fetchval("SELECT id FROM users WHERE name = $1", name)
        if user_id is None:  # deleted between the two statements
            raise
        return await add_api_key(conn, user_id=user_id)


@app.command("create")
@reports_errors
def create(
    name: Annotated[str, typer.Option("--name", help="Unique user name.")],
    credits: Annotated[int, typer.Option("--credits", min=0, help="Opening balance.")],
    admin: Annotated[bool, typer.Option("--admin", help="Give the user the admin role.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Create a user with one API key. The key is printed once; only its hash is stored."""
    try:
        check_user_name(name)
    except ValueError as exc:
        raise CliError(f"--name: {exc}") from exc
    user = asyncio.run(
        _create(
            local_stack.database_url(),
            name=name,
            credits=credits,
            role="admin" if admin else "user",
        )
    )
    if as_json:
        fields = {
            "id": str(user.id),
            "name": user.name,
            "role": user.role,
            "credits": user.credits,
            "api_key": user.api_key,
        }
        typer.echo(json.dumps(fields))
        return
    typer.echo(f"created user {user.name!r} (role {user.role}, {user.credits} credits)")
    typer.echo(f"id:      {user.id}")
    typer.echo(f"api key: {user.api_key}")
    typer.echo("The API key is shown only this once: store it now.", err=True)


async def _grant(database_url: str, *, name: str, credits: int) -> int:
    async with connect(database_url) as conn:
        try:
            return await grant_credits(conn, user=name, amount=credits)
        except UnknownUserError as exc:
            raise CliError(str(exc)) from exc


@app.command("grant")
@reports_errors
def grant(
    name: Annotated[str, typer.Option("--name", help="The user's name.")],
    credits: Annotated[int, typer.Option("--credits", min=1, help="Credits to add.")],
) -> None:
    """Add credits to a user's balance (a ``grant`` in the ledger)."""
    balance = asyncio.run(_grant(local_stack.database_url(), name=name, credits=credits))
    typer.echo(f"{name!r} now has {balance} credits")
