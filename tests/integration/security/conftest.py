"""What the security tests share: RSA keys made here, a JWKS served by a local HTTP server,
tokens signed with those keys, and an API configured to accept them."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import asyncpg
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from tests.integration.api.conftest import (  # noqa: F401 - fixtures shared with these tests
    Api,
    alice,
    api,
    bob,
    serving,
    settings_for,
)
from tests.support import ServerUrls, load_demo_catalog

ISSUER = "https://id.example.test"
AUDIENCE = "relai"


@dataclass
class SigningKey:
    kid: str
    private: rsa.RSAPrivateKey

    def jwk(self) -> dict[str, Any]:
        public: dict[str, Any] = json.loads(RSAAlgorithm.to_jwk(self.private.public_key()))
        return {**public, "kid": self.kid, "alg": "RS256", "use": "sig"}

    def token(self, subject: str, *, ttl_s: float = 300, **claims: Any) -> str:
        now = int(time.time())
        payload = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": subject,
            "iat": now,
            "exp": now + int(ttl_s),
            **claims,
        }
        return jwt.encode(payload, self.private, algorithm="RS256", headers={"kid": self.kid})


@dataclass
class JwksServer:
    """Serves ``keys`` as a JWKS at ``url``; counts the fetches."""

    keys: list[dict[str, Any]] = field(default_factory=list)
    fetches: int = 0
    url: str = ""


@pytest.fixture(scope="session")
def signing_keys() -> tuple[SigningKey, SigningKey]:
    return (
        SigningKey("key-1", rsa.generate_private_key(public_exponent=65537, key_size=2048)),
        SigningKey("key-2", rsa.generate_private_key(public_exponent=65537, key_size=2048)),
    )


@pytest.fixture
def jwks(signing_keys: tuple[SigningKey, SigningKey]) -> Iterator[JwksServer]:
    state = JwksServer(keys=[signing_keys[0].jwk()])

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.fetches += 1
            body = json.dumps({"keys": state.keys}).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/jwks.json"
    yield state
    server.shutdown()
    server.server_close()


def oidc_settings(jwks: JwksServer, **overrides: Any) -> dict[str, Any]:
    return {
        "oidc_issuer": ISSUER,
        "oidc_jwks_url": jwks.url,
        "oidc_audience": AUDIENCE,
        "oidc_leeway_s": 0,
        **overrides,
    }


@pytest.fixture
async def oidc_api(
    servers: ServerUrls, db_pool: asyncpg.Pool[Any], jwks: JwksServer
) -> AsyncIterator[Api]:
    """The API accepting tokens of ``ISSUER`` (audience ``AUDIENCE``) besides API keys."""
    await load_demo_catalog(db_pool)
    async with serving(settings_for(servers, **oidc_settings(jwks))) as running:
        yield running


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
