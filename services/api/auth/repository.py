from __future__ import annotations

from typing import Any

import asyncpg

_BY_KEY_HASH = """
SELECT u.id, u.name, u.role
FROM api_keys k JOIN users u ON u.id = k.user_id
WHERE k.key_hash = $1 AND k.revoked_at IS NULL
"""

_ACCOUNT = "SELECT id, name, role, balance, reserved, created_at FROM users WHERE id = $1"


async def find_by_key_hash(conn: asyncpg.Pool[Any], key_hash: bytes) -> asyncpg.Record | None:
    return await conn.fetchrow(_BY_KEY_HASH, key_hash)


async def get_account(conn: asyncpg.Pool[Any], user_id: Any) -> asyncpg.Record | None:
    return await conn.fetchrow(_ACCOUNT, user_id)
