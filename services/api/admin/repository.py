from __future__ import annotations

from typing import Any

import asyncpg

_USERS = """
SELECT id, name, role, balance, reserved, created_at FROM users ORDER BY name LIMIT $1 OFFSET $2
"""

_USER = "SELECT id, name, role, balance, reserved, created_at FROM users WHERE name = $1"


async def list_users(pool: asyncpg.Pool[Any], *, limit: int, offset: int) -> list[asyncpg.Record]:
    return await pool.fetch(_USERS, limit, offset)


async def get_user(pool: asyncpg.Pool[Any], name: str) -> asyncpg.Record | None:
    return await pool.fetchrow(_USER, name)


_HANDLERS = "SELECT id, credits, params, max_concurrency, enabled FROM handlers ORDER BY id"


async def list_handlers(pool: asyncpg.Pool[Any]) -> list[asyncpg.Record]:
    return await pool.fetch(_HANDLERS)
