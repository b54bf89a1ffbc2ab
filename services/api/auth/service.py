from __future__ import annotations

import hashlib
import time
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
from cachetools import TTLCache

from libs import accounts
from libs.security import KEY_PREFIX, hash_api_key
from services.api.auth import repository
from services.api.auth.oidc import OidcVerifier, looks_like_jwt
from services.api.errors import Unauthorized


@dataclass(frozen=True, slots=True)
class Principal:
    id: uuid.UUID
    name: str
    role: str
    key_hash: bytes | None = None
    """The API key this caller authenticated with (None for a token)."""
    expires_at: float | None = None
    """When the caller's token expires (Unix time; None for an API key)."""

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def credential(self) -> str:
        """What rate limits count against: the API key, or the user for tokens."""
        return self.key_hash.hex() if self.key_hash is not None else f"user:{self.id}"


class Authenticator:
    """Turns an API key, or a JWT from the configured OIDC issuer, into the user it belongs to.

    Verified credentials are remembered for ``ttl_s`` seconds (a token no longer than it lives)
    so that the submit path does not pay a database round trip per call; a revoked key
    therefore stops working within ``ttl_s``.
    """

    def __init__(
        self,
        pool: asyncpg.Pool[Any],
        *,
        ttl_s: float,
        oidc: OidcVerifier | None = None,
        provision: bool = False,
    ) -> None:
        self._pool = pool
        self.ttl_s = ttl_s
        self._oidc = oidc
        self._provision = provision
        self._cache: TTLCache[bytes, Principal] = TTLCache(maxsize=100_000, ttl=ttl_s)

    async def authenticate(self, token: str | None) -> Principal:
        if not token:
            raise Unauthorized("missing credentials: send 'Authorization: Bearer <key or token>'")
        if self._oidc is not None and not token.startswith(KEY_PREFIX) and looks_like_jwt(token):
            return await self._from_jwt(token, self._oidc)
        return await self._from_key_hash(hash_api_key(token))

    async def still_valid(self, principal: Principal) -> bool:
        """Whether the credential ``principal`` signed in with still holds: a token not yet
        expired, a key not revoked (as seen through the cache)."""
        if principal.expires_at is not None and time.time() >= principal.expires_at:
            return False
        if principal.key_hash is not None:
            try:
                await self._from_key_hash(principal.key_hash)
            except Unauthorized:
                return False
        return True

    async def _from_key_hash(self, key_hash: bytes) -> Principal:
        principal = self._cache.get(key_hash)
        if principal is None:
            row = await repository.find_by_key_hash(self._pool, key_hash)
            if row is None:
                raise Unauthorized("invalid or revoked API key")
            principal = Principal(
                id=row["id"], name=row["name"], role=row["role"], key_hash=key_hash
            )
            self._cache[key_hash] = principal
        return principal

    async def _from_jwt(self, token: str, oidc: OidcVerifier) -> Principal:
        cache_key = hashlib.sha256(token.encode()).digest()
        principal = self._cache.get(cache_key)
        if principal is not None and principal.expires_at is not None:
            if time.time() < principal.expires_at:
                return principal
            raise Unauthorized("the token has expired")
        claims = await oidc.verify(token)
        async with self._pool.acquire() as conn, conn.transaction():
            row = await accounts.find_identity(conn, issuer=claims.issuer, subject=claims.subject)
            if row is None and self._provision:
                row = await accounts.provision_identity(
                    conn, issuer=claims.issuer, subject=claims.subject
                )
        if row is None:
            raise Unauthorized("this identity is not linked to a Relai user")
        principal = Principal(
            id=row["id"], name=row["name"], role=row["role"], expires_at=claims.expires_at
        )
        self._cache[cache_key] = principal
        return principal
