from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
from cachetools import TTLCache

from libs.security import hash_api_key
from services.api.auth import repository
from services.api.errors import Unauthorized


@dataclass(frozen=True, slots=True)
class Principal:
    id: uuid.UUID
    name: str
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


class Authenticator:
    """Turns an API key into the user it belongs to.

    Verified keys are remembered for ``ttl_s`` seconds so that the submit path does not pay a
    database round trip per call; a revoked key therefore stops working within ``ttl_s``.
    """

    def __init__(self, pool: asyncpg.Pool[Any], *, ttl_s: float) -> None:
        self._pool = pool
        self.ttl_s = ttl_s
        self._cache: TTLCache[bytes, Principal] = TTLCache(maxsize=100_000, ttl=ttl_s)

    async def authenticate(self, api_key: str | None) -> Principal:
        if not api_key:
            raise Unauthorized("missing API key: send 'Authorization: Bearer <key>'")
        key_hash = hash_api_key(api_key)
        principal = self._cache.get(key_hash)
        if principal is None:
            row = await repository.find_by_key_hash(self._pool, key_hash)
            if row is None:
                raise Unauthorized("invalid or revoked API key")
            principal = Principal(id=row["id"], name=row["name"], role=row["role"])
            self._cache[key_hash] = principal
        return principal
