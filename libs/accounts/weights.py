"""Users' scheduling weights: kept in Postgres (``users.weight``), mirrored in Redis for the
workers' take script (``LIMITS_WEIGHTS_KEY``: user id → weight, only those other than 1).

The mirror is written when an admin sets a weight, and rebuilt whole from Postgres by recon
every few seconds (``mirror_weights``), so a Redis that lost it (a restart, a failover) has it
back without anyone's help; until then its users are served at weight 1."""

from __future__ import annotations

import uuid

from redis.asyncio import Redis

from libs.accounts.errors import UnknownUserError
from libs.contracts.limits import LIMITS_WEIGHTS_KEY
from libs.db import PgConnection, PgPool

WEIGHT_MAX = 100
"""The heaviest a user may be: 100 jobs per turn where others get one."""


async def set_weight(conn: PgConnection, *, user: str, weight: int) -> uuid.UUID:
    """Set the user's weight (1 to ``WEIGHT_MAX``) in the caller's transaction; their id."""
    if not 1 <= weight <= WEIGHT_MAX:
        raise ValueError(f"a weight is from 1 to {WEIGHT_MAX}")
    user_id: uuid.UUID | None = await conn.fetchval(
        "UPDATE users SET weight = $2 WHERE name = $1 RETURNING id", user, weight
    )
    if user_id is None:
        raise UnknownUserError(f"no user named {user!r}")
    return user_id


async def weights(db: PgPool | PgConnection) -> dict[str, int]:
    """Every weight other than 1, by user id."""
    rows = await db.fetch("SELECT id, weight FROM users WHERE weight <> 1")
    return {str(r["id"]): r["weight"] for r in rows}


async def mirror_weight(redis: Redis, user_id: uuid.UUID, weight: int) -> None:
    """One user's weight into the mirror (1 is the default: no entry)."""
    if weight == 1:
        await redis.hdel(LIMITS_WEIGHTS_KEY, str(user_id))
    else:
        await redis.hset(LIMITS_WEIGHTS_KEY, str(user_id), weight)


async def mirror_weights(redis: Redis, current: dict[str, int]) -> None:
    """The whole mirror replaced by ``current`` (``weights``), in one transaction."""
    pipe = redis.pipeline(transaction=True)
    pipe.delete(LIMITS_WEIGHTS_KEY)
    if current:
        pipe.hset(LIMITS_WEIGHTS_KEY, items=[part for pair in current.items() for part in pair])
    await pipe.execute()
