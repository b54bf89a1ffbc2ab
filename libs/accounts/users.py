from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Literal

import asyncpg

from libs.accounts.errors import BalanceOverflowError, UnknownUserError, UserExistsError
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
    """Create a user with one API key; the opening balance is a ``grant`` in the ledger."""
    if credits < 0:
        raise ValueError("credits must not be negative")
    user_id = uuid.uuid4()
    async with conn.transaction():
        try:
            await conn.execute(
                "INSERT INTO users (id, name, role, balance) VALUES ($1, $2, $3, $4)",
                user_id,
                name,
                role,
                credits,
            )
        except asyncpg.UniqueViolationError as exc:
            raise UserExistsError(f"a user named {name!r} already exists") from exc
        key = await add_api_key(conn, user_id=user_id)
        await conn.execute(
            "INSERT INTO credit_ledger (user_id, kind, amount) VALUES ($1, 'grant', $2)",
            user_id,
            credits,
        )
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
    """Add ``amount`` credits to the user's balance (a ``grant`` in the ledger); returns the new
    balance."""
    if amount <= 0:
        raise ValueError("a grant must be a positive number of credits")
    async with conn.transaction():
        try:
            row = await conn.fetchrow(
                "UPDATE users SET balance = balance + $2 WHERE name = $1 RETURNING id, balance",
                user,
                amount,
            )
        except asyncpg.NumericValueOutOfRangeError as exc:
            raise BalanceOverflowError(f"{user!r}'s balance would exceed its limit") from exc
        if row is None:
            raise UnknownUserError(f"no user named {user!r}")
        await conn.execute(
            "INSERT INTO credit_ledger (user_id, kind, amount) VALUES ($1, 'grant', $2)",
            row["id"],
            amount,
        )
    balance: int = row["balance"]
    return balance
