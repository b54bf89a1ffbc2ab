"""API keys of existing users: list, revoke, rotate. Only hashes are stored; a key is shown once."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from libs.accounts.errors import UnknownKeyError, UnknownUserError
from libs.accounts.users import add_api_key
from libs.db import PgConnection
from libs.security import hash_api_key


@dataclass(frozen=True)
class KeyInfo:
    id: uuid.UUID
    prefix: str
    created_at: datetime
    revoked_at: datetime | None


async def _user_id(conn: PgConnection, name: str) -> uuid.UUID:
    user_id: uuid.UUID | None = await conn.fetchval("SELECT id FROM users WHERE name = $1", name)
    if user_id is None:
        raise UnknownUserError(f"no user named {name!r}")
    return user_id


async def list_keys(conn: PgConnection, *, user: str) -> list[KeyInfo]:
    """The user's keys, newest first, revoked ones included."""
    rows = await conn.fetch(
        "SELECT id, prefix, created_at, revoked_at FROM api_keys WHERE user_id = $1 "
        "ORDER BY created_at DESC",
        await _user_id(conn, user),
    )
    return [KeyInfo(**dict(row)) for row in rows]


async def issue_key(conn: PgConnection, *, user: str) -> str:
    """A new key for ``user``; the others keep working."""
    return await add_api_key(conn, user_id=await _user_id(conn, user))


async def revoke_key(conn: PgConnection, *, key_id: uuid.UUID) -> None:
    """Revoke a key (idempotent: revoking a revoked key changes nothing)."""
    found = await conn.fetchval(
        "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1 RETURNING id",
        key_id,
    )
    if found is None:
        raise UnknownKeyError(f"no key with id {key_id}")


async def rotate_key(conn: PgConnection, *, key_id: uuid.UUID) -> str:
    """Revoke a live key and issue its user a new one, in the caller's transaction."""
    user_id = await conn.fetchval(
        "UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL "
        "RETURNING user_id",
        key_id,
    )
    if user_id is None:
        raise UnknownKeyError(f"no live key with id {key_id}")
    return await add_api_key(conn, user_id=user_id)


async def admin_holding(conn: PgConnection, key: str) -> str | None:
    """The name of the admin whose live API key ``key`` is; None for an unknown or revoked key,
    or one of a user who is not an admin."""
    name: str | None = await conn.fetchval(
        "SELECT u.name FROM api_keys k JOIN users u ON u.id = k.user_id "
        "WHERE k.key_hash = $1 AND k.revoked_at IS NULL AND u.role = 'admin'",
        hash_api_key(key),
    )
    return name
