"""Identities: a subject of an OIDC issuer, signed in as a Relai user."""

from __future__ import annotations

import hashlib
import uuid
from urllib.parse import urlsplit

import asyncpg

from libs.accounts.errors import IdentityExistsError, UnknownUserError
from libs.db import PgConnection

_FIND = """
SELECT u.id, u.name, u.role FROM identities i JOIN users u ON u.id = i.user_id
WHERE i.issuer = $1 AND i.subject = $2
"""


async def link_identity(conn: PgConnection, *, user: str, issuer: str, subject: str) -> uuid.UUID:
    """Let ``issuer``'s ``subject`` sign in as the user named ``user``; returns the user's id."""
    user_id: uuid.UUID | None = await conn.fetchval("SELECT id FROM users WHERE name = $1", user)
    if user_id is None:
        raise UnknownUserError(f"no user named {user!r}")
    try:
        await conn.execute(
            "INSERT INTO identities (issuer, subject, user_id) VALUES ($1, $2, $3)",
            issuer,
            subject,
            user_id,
        )
    except asyncpg.UniqueViolationError as exc:
        raise IdentityExistsError(f"{subject!r} of {issuer} is already linked to a user") from exc
    return user_id


async def find_identity(conn: PgConnection, *, issuer: str, subject: str) -> asyncpg.Record | None:
    """The user (id, name, role) that ``issuer``'s ``subject`` signs in as, if any."""
    return await conn.fetchrow(_FIND, issuer, subject)


def provisioned_name(issuer: str, subject: str) -> str:
    """A stable, unique user name for a subject seen for the first time."""
    digest = hashlib.sha256(f"{issuer}\0{subject}".encode()).hexdigest()[:12]
    return f"oidc-{urlsplit(issuer).hostname or 'issuer'}-{digest}"


async def provision_identity(conn: PgConnection, *, issuer: str, subject: str) -> asyncpg.Record:
    """The user ``issuer``'s ``subject`` signs in as, created (role user, no credits) on first
    sign-in, in the caller's transaction; concurrent first sign-ins end with one user."""
    user_id = uuid.uuid4()
    await conn.execute(
        "INSERT INTO users (id, name, role, balance) VALUES ($1, $2, 'user', 0) "
        "ON CONFLICT (name) DO NOTHING",
        user_id,
        provisioned_name(issuer, subject),
    )
    await conn.execute(
        "INSERT INTO identities (issuer, subject, user_id) "
        "SELECT $1, $2, id FROM users WHERE name = $3 ON CONFLICT DO NOTHING",
        issuer,
        subject,
        provisioned_name(issuer, subject),
    )
    row = await find_identity(conn, issuer=issuer, subject=subject)
    assert row is not None
    return row
