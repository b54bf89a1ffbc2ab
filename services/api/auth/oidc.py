"""OpenID Connect: JSON Web Tokens from one configured issuer, verified against its JWKS.

The JWKS is fetched on first use and cached (``RELAI_OIDC_JWKS_CACHE_S``); a token whose
``kid`` is not in the cached set makes the client fetch the set again (at most once per
cooldown), so that the issuer can rotate keys. Only asymmetric algorithms are accepted: a token
signed with ``HS256`` (keyed with the public key) or ``none`` is refused.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import jwt

from services.api.errors import RelaiError, Unauthorized

ASYMMETRIC = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)


class IdentityProviderUnavailable(RelaiError):
    status_code, code = 503, "unavailable"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.headers = {"Retry-After": "5"}


@dataclass(frozen=True, slots=True)
class Claims:
    issuer: str
    subject: str
    expires_at: float
    """When the token stops being accepted: its ``exp`` plus the leeway."""


def looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2 and token.startswith("eyJ")


class OidcVerifier:
    def __init__(
        self,
        *,
        issuer: str,
        jwks_url: str,
        audience: str | None,
        algorithms: list[str],
        jwks_cache_s: float,
        jwks_cooldown_s: float,
        leeway_s: float,
    ) -> None:
        unsafe = set(algorithms) - ASYMMETRIC
        if unsafe or not algorithms:
            raise ValueError(f"OIDC algorithms must be asymmetric ones, not {sorted(unsafe)}")
        self.issuer = issuer
        self._audience = audience
        self._algorithms = list(algorithms)
        self._leeway = leeway_s
        self._jwks = jwt.PyJWKClient(
            jwks_url,
            cache_jwk_set=True,
            lifespan=jwks_cache_s,
            timeout=5,
            cooldown_duration=jwks_cooldown_s,
        )

    async def verify(self, token: str) -> Claims:
        claims = self._decode(token, await self._signing_key(token))
        subject = claims["sub"]
        if not isinstance(subject, str) or not subject:
            raise Unauthorized("the token has no subject")
        # The moment the token stops being accepted, leeway included, for every later check of
        # it (the cached principal, a WebSocket's close) to agree with this one.
        expires_at = float(claims["exp"]) + self._leeway
        return Claims(issuer=self.issuer, subject=subject, expires_at=expires_at)

    async def _signing_key(self, token: str) -> jwt.PyJWK:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as exc:
            raise Unauthorized(f"malformed token: {exc}") from exc
        if header.get("alg") not in self._algorithms:
            raise Unauthorized(f"token algorithm {header.get('alg')!r} is not accepted")
        try:
            return await asyncio.to_thread(self._jwks.get_signing_key_from_jwt, token)
        except jwt.PyJWKClientConnectionError as exc:
            raise IdentityProviderUnavailable(
                "the identity provider's keys cannot be fetched"
            ) from exc
        except (jwt.PyJWKClientError, jwt.InvalidTokenError) as exc:
            raise Unauthorized(f"token signing key not found: {exc}") from exc

    def _decode(self, token: str, key: jwt.PyJWK) -> dict[str, Any]:
        options: dict[str, Any] = {"require": ["exp", "iss", "sub"]}
        if self._audience is None:
            options["verify_aud"] = False
        try:
            return jwt.decode(
                token,
                key=key,
                algorithms=self._algorithms,
                audience=self._audience,
                issuer=self.issuer,
                leeway=self._leeway,
                options=options,  # type: ignore[arg-type]
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthorized("the token has expired") from exc
        except jwt.InvalidAudienceError as exc:
            raise Unauthorized("the token is not meant for this audience") from exc
        except jwt.InvalidIssuerError as exc:
            raise Unauthorized("the token comes from another issuer") from exc
        except jwt.InvalidTokenError as exc:
            raise Unauthorized(f"invalid token: {exc}") from exc
