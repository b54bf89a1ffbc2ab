"""A fake OpenID Connect issuer on this host, for the console's sign-in: its discovery document,
an authorization endpoint that signs the one test user in at once (a 302 back with a code), a
token endpoint that checks the code, its redirect URI and the PKCE verifier (S256) before
handing out signed JWTs, and its JWKS. Served by uvicorn in the test's event loop."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from urllib.parse import urlencode

import jwt
import uvicorn
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from tests.integration.api.conftest import free_port

KID = "console-key"
CORS = {"Access-Control-Allow-Origin": "*"}


@dataclass
class Grant:
    client_id: str
    redirect_uri: str
    challenge: str
    audience: str | None


@dataclass
class FakeIssuer:
    url: str
    client_id: str
    subject: str
    key: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    grants: dict[str, Grant] = field(default_factory=dict)
    exchanged: list[Grant] = field(default_factory=list)
    """Codes traded for tokens, each checked (redirect URI, PKCE)."""

    def _token(self, audience: str) -> str:
        now = int(time.time())
        claims = {
            "iss": self.url,
            "aud": audience,
            "sub": self.subject,
            "iat": now,
            "exp": now + 600,
        }
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": KID})

    async def discovery(self, _: Request) -> Response:
        return JSONResponse(
            {
                "issuer": self.url,
                "authorization_endpoint": f"{self.url}/authorize",
                "token_endpoint": f"{self.url}/token",
                "jwks_uri": f"{self.url}/jwks",
                "code_challenge_methods_supported": ["S256"],
            },
            headers=CORS,
        )

    async def authorize(self, request: Request) -> Response:
        query = request.query_params
        if query.get("client_id") != self.client_id or query.get("response_type") != "code":
            return JSONResponse({"error": "invalid_request"}, status_code=400)
        if query.get("code_challenge_method") != "S256" or not query.get("code_challenge"):
            return JSONResponse({"error": "invalid_request", "error_description": "PKCE"}, 400)
        code = secrets.token_urlsafe(16)
        self.grants[code] = Grant(
            client_id=query["client_id"],
            redirect_uri=query["redirect_uri"],
            challenge=query["code_challenge"],
            audience=query.get("audience"),
        )
        back = urlencode({"code": code, "state": query.get("state", "")})
        return RedirectResponse(f"{query['redirect_uri']}?{back}", status_code=302)

    async def token(self, request: Request) -> Response:
        form = await request.form()
        grant = self.grants.pop(str(form.get("code")), None)
        verifier = str(form.get("code_verifier", ""))
        digest = hashlib.sha256(verifier.encode()).digest()
        challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        if (
            grant is None
            or form.get("grant_type") != "authorization_code"
            or form.get("client_id") != grant.client_id
            or form.get("redirect_uri") != grant.redirect_uri
            or challenge != grant.challenge
        ):
            return JSONResponse({"error": "invalid_grant"}, status_code=400, headers=CORS)
        self.exchanged.append(grant)
        return JSONResponse(
            {
                "token_type": "Bearer",
                "expires_in": 600,
                "access_token": self._token(grant.audience or self.client_id),
                "id_token": self._token(self.client_id),
            },
            headers=CORS,
        )

    async def jwks(self, _: Request) -> Response:
        public = json.loads(RSAAlgorithm.to_jwk(self.key.public_key()))
        return JSONResponse({"keys": [{**public, "kid": KID, "alg": "RS256", "use": "sig"}]})

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/.well-known/openid-configuration", self.discovery),
                Route("/authorize", self.authorize),
                Route("/token", self.token, methods=["POST"]),
                Route("/jwks", self.jwks),
            ]
        )


@asynccontextmanager
async def fake_issuer(*, client_id: str, subject: str) -> AsyncIterator[FakeIssuer]:
    port = free_port()
    issuer = FakeIssuer(url=f"http://127.0.0.1:{port}", client_id=client_id, subject=subject)
    config = uvicorn.Config(issuer.app(), host="127.0.0.1", port=port, log_config=None)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield issuer
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
