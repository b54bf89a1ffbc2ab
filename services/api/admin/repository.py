from __future__ import annotations

import uuid
from typing import Any

import asyncpg

_USERS = """
SELECT id, name, role, balance, reserved, created_at, weight FROM users ORDER BY name
LIMIT $1 OFFSET $2
"""

_USER = "SELECT id, name, role, balance, reserved, created_at, weight FROM users WHERE name = $1"


async def list_users(pool: asyncpg.Pool[Any], *, limit: int, offset: int) -> list[asyncpg.Record]:
    return await pool.fetch(_USERS, limit, offset)


async def get_user(pool: asyncpg.Pool[Any], name: str) -> asyncpg.Record | None:
    return await pool.fetchrow(_USER, name)


_HANDLERS = "SELECT id, credits, params, max_concurrency, enabled FROM handlers ORDER BY id"


async def list_handlers(pool: asyncpg.Pool[Any]) -> list[asyncpg.Record]:
    return await pool.fetch(_HANDLERS)


_OWNERS = """
SELECT r.id, u.name, r.status FROM requests r JOIN users u ON u.id = r.user_id
WHERE r.id = ANY($1::uuid[])
"""


async def request_owners(
    pool: asyncpg.Pool[Any], ids: list[uuid.UUID]
) -> dict[uuid.UUID, tuple[str, str]]:
    """Each request's owner and status."""
    if not ids:
        return {}
    return {r["id"]: (r["name"], r["status"]) for r in await pool.fetch(_OWNERS, ids)}


# The index of unfinished requests by updated_at serves the scan.
_IDLE = """
SELECT r.id, u.name AS user,
       coalesce(o.service || '/' || o.action, 'deal/' || d.slug) AS target,
       r.status, r.attempt, r.created_at, r.updated_at,
       extract(epoch FROM now() - r.updated_at)::float8 AS idle_s,
       EXISTS (SELECT 1 FROM outbox ob WHERE ob.request_id = r.id) AS queued
FROM requests r JOIN users u ON u.id = r.user_id
LEFT JOIN offers o ON o.id = r.offer_id LEFT JOIN deals d ON d.id = r.deal_id
WHERE r.status IN ('pending', 'running')
  AND r.updated_at <= now() - make_interval(secs => $1)
ORDER BY r.updated_at, r.id
LIMIT $2
"""


async def idle_requests(
    pool: asyncpg.Pool[Any], *, idle_s: float, limit: int
) -> list[asyncpg.Record]:
    return await pool.fetch(_IDLE, idle_s, limit)


_STATE = """
SELECT r.status, r.updated_at, r.deal_id IS NOT NULL AS deal,
       EXISTS (SELECT 1 FROM outbox ob WHERE ob.request_id = r.id) AS queued
FROM requests r WHERE r.id = $1
"""


async def request_state(pool: asyncpg.Pool[Any], request_id: uuid.UUID) -> asyncpg.Record | None:
    return await pool.fetchrow(_STATE, request_id)
