"""What the console needs to sign in with the configured OIDC issuer: its discovery document's
authorization and token endpoints, fetched by the API (so that the console's page can allow the
token endpoint's origin in its CSP) and cached."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from libs.logs import get_logger

log = get_logger(__name__)

CACHE_S = 3600.0
RETRY_S = 30.0
"""After a failed fetch, how long the console offers no OIDC sign-in before trying again."""


@dataclass(frozen=True, slots=True)
class Endpoints:
    authorization_endpoint: str
    token_endpoint: str


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class Discovery:
    def __init__(self, issuer: str, *, timeout_s: float = 5.0) -> None:
        self.issuer = issuer.rstrip("/")
        self._timeout_s = timeout_s
        self._found: Endpoints | None = None
        self._until = 0.0
        self._lock = asyncio.Lock()

    async def endpoints(self) -> Endpoints | None:
        """The issuer's endpoints, or None while its discovery document cannot be had."""
        if time.monotonic() < self._until:
            return self._found
        async with self._lock:
            if time.monotonic() >= self._until:
                self._found = await self._fetch()
                self._until = time.monotonic() + (CACHE_S if self._found else RETRY_S)
        return self._found

    async def _fetch(self) -> Endpoints | None:
        url = f"{self.issuer}/.well-known/openid-configuration"
        try:
            async with httpx.AsyncClient(timeout=self._timeout_s) as client:
                answer = await client.get(url)
                answer.raise_for_status()
                document = answer.json()
            found = Endpoints(
                authorization_endpoint=str(document["authorization_endpoint"]),
                token_endpoint=str(document["token_endpoint"]),
            )
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            log.warning("oidc discovery failed; the console offers API keys only", error=repr(exc))
            return None
        for endpoint in (found.authorization_endpoint, found.token_endpoint):
            if urlsplit(endpoint).scheme not in ("https", "http"):
                log.warning("oidc discovery names a non-HTTP endpoint", endpoint=endpoint)
                return None
        return found
