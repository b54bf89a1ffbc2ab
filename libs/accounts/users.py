from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Literal

import asyncpg

from libs import ledger
from libs.accounts.errors import BalanceOverflowError, UnknownUserError, UserExistsError
from libs.accounts.names import check_user_name
from libs.db import PgConnection
from libs.security import generate_api_key, hash_api_key


@dataclass(frozen=True)
class NewUser:
    id: uuid.UUID
    name: str
    role: str
    credits: int
    api_key: str
    """Shown once; only its hash is stored."""


async def create_user(
    conn: PgConnection,
    *,
    name: str,
    credits: int,
    role: Literal["user", "admin"] = "user",
) -> NewUser:
    """Create a user with one API key; the opening balance is a ``grant`` in the ledger. Run it
    in a transaction of the caller's: its writes commit together or not at all."""
    check_user_name(name)
    if credits < 0:
        raise ValueError("credits must not be negative")
    user_id = uuid.uuid4()
    try:
        await conn.execute(
            "INSERT INTO users (id, name, role) VALUES ($1, $2, $3)", user_id, name, role
        )
    except asyncpg.UniqueViolationError as exc:
        raise UserExistsError(f"a user named {name!r} already exists") from exc
    key = await add_api_key(conn, user_id=user_id)
    await ledger.grant(conn, user_id=user_id, amount=credits)
    return NewUser(id=user_id, name=name, role=role, credits=credits, api_key=key)


async def add_api_key(conn: PgConnection, *, user_id: uuid.UUID) -> str:
    """Issue another API key to an existing user and return it; only its hash is stored."""
    key = generate_api_key()
    await conn.execute(
        "INSERT INTO api_keys (id, user_id, key_hash, prefix) VALUES ($1, $2, $3, $4)",
        uuid.uuid4(),
        user_id,
        hash_api_key(key),
        key[:8],
    )
    return key


async def grant_credits(conn: PgConnection, *, user: str, amount: int) -> int:
    """Add ``amount`` credits to the user's balance (a ``grant`` in the ledger), in the caller's
    transaction; returns the new balance."""
    if amount <= 0:
        raise ValueError("a grant must be a positive number of credits")
    user_id = await conn.fetchval("SELECT id FROM users WHERE name = $1", user)
    if user_id is None:
        raise UnknownUserError(f"no user named {user!r}")
    try:
        balance = await ledger.grant(conn, user_id=user_id, amount=amount)
    except asyncpg.NumericValueOutOfRangeError as exc:
        raise BalanceOverflowError(f"{user!r}'s balance would exceed its limit") from exc
    assert balance is not None  # one movement, for a user that exists
    return balance
