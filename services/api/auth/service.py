from __future__ import annotations

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
from services.api.auth.throttle import Client, FailureThrottle
from services.api.errors import TooManyRequests, Unauthorized


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


KNOWN_FOR_S = 3600.0
"""How long a credential this process verified stays known: a known one is looked up even from
an address the throttle refuses (see ``throttle.py``), so that its owner keeps working."""


class Authenticator:
    """Turns an API key, or a JWT from the configured OIDC issuer, into the user it belongs to.

    Verified credentials are remembered for ``ttl_s`` seconds (a token no longer than it lives)
    so that the submit path does not pay a database round trip per call; a revoked key
    therefore stops working within ``ttl_s``. Refused keys are remembered as long, so that
    retrying a bad key costs Postgres nothing either (a key's refusal is final: its hash never
    becomes valid; a token's may not be, its issuer's new signing key or its link to a user being
    on the way). A credential not remembered is looked up only if its caller's address is not
    throttled (``throttle``).
    """

    def __init__(
        self,
        pool: asyncpg.Pool[Any],
        *,
        ttl_s: float,
        throttle: FailureThrottle,
        oidc: OidcVerifier | None = None,
        provision: bool = False,
    ) -> None:
        self._pool = pool
        self.ttl_s = ttl_s
        self.throttle = throttle
        self._oidc = oidc
        self._provision = provision
        self._cache: TTLCache[bytes, Principal] = TTLCache(maxsize=100_000, ttl=ttl_s)
        self._refused: TTLCache[bytes, str] = TTLCache(maxsize=100_000, ttl=ttl_s)
        self._known: TTLCache[bytes, bool] = TTLCache(maxsize=100_000, ttl=KNOWN_FOR_S)

    async def authenticate(self, token: str | None, client: Client = None) -> Principal:
        """The caller ``token`` names; ``client`` is the ASGI scope's, whose failures count."""
        if not token:
            raise Unauthorized("missing credentials: send 'Authorization: Bearer <key or token>'")
        cache_key = hash_api_key(token)
        principal = self._cache.get(cache_key)
        if principal is not None:
            if principal.expires_at is not None and time.time() >= principal.expires_at:
                raise Unauthorized("the token has expired")
            return principal
        return await self._verify(token, cache_key, client)

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

    async def _verify(self, token: str, cache_key: bytes, client: Client) -> Principal:
        if cache_key not in self._known and (wait := self.throttle.retry_after(client)):
            raise TooManyRequests(
                f"too many failed authentications from this address; retry in {wait} s",
                retry_after=wait,
            )
        refused = self._refused.get(cache_key)
        if refused is not None:
            self.throttle.failed(client)
            raise Unauthorized(refused)
        jwt = not token.startswith(KEY_PREFIX) and looks_like_jwt(token)
        oidc = self._oidc if jwt else None
        try:
            if oidc is not None:
                principal = await self._from_jwt(token, cache_key, oidc)
            else:
                principal = await self._from_key_hash(cache_key)
        except Unauthorized as exc:
            if oidc is None:  # a key's refusal is final
                self._refused[cache_key] = exc.message
            self._known.pop(cache_key, None)
            self.throttle.failed(client)
            raise
        self._known[cache_key] = True
        return principal

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

    async def _from_jwt(self, token: str, cache_key: bytes, oidc: OidcVerifier) -> Principal:
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
