"""API keys, roles and OIDC tokens: who gets in, and the exact status of who does not."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from typing import Any

import asyncpg
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from libs.accounts import NewUser
from libs.security import hash_api_key
from tests.integration.api.conftest import Api, auth, free_port, serving, settings_for
from tests.integration.security.conftest import (
    AUDIENCE,
    ISSUER,
    JwksServer,
    SigningKey,
    bearer,
    oidc_settings,
)
from tests.support import ServerUrls, create_user

Keys = tuple[SigningKey, SigningKey]


async def _link(pool: asyncpg.Pool[Any], user: NewUser, subject: str) -> None:
    await pool.execute(
        "INSERT INTO identities (issuer, subject, user_id) VALUES ($1, $2, $3)",
        ISSUER,
        subject,
        user.id,
    )


async def test_api_keys_are_random_hashed_and_checked(
    api: Api, alice: NewUser, db_pool: asyncpg.Pool[Any]
) -> None:
    assert alice.api_key.startswith("rk_")
    assert len(alice.api_key) >= 3 + 43  # 256 random bits
    stored = await db_pool.fetchrow(
        "SELECT key_hash, prefix FROM api_keys WHERE user_id = $1", alice.id
    )
    assert stored is not None
    assert stored["key_hash"] == hash_api_key(alice.api_key)
    assert stored["prefix"] == alice.api_key[:8]

    missing = await api.client.get("/me")
    assert (missing.status_code, missing.headers["www-authenticate"]) == (401, "Bearer")
    assert (await api.client.get("/me", headers=bearer("rk_not-a-key"))).status_code == 401
    assert (
        await api.client.get("/me", headers={"Authorization": alice.api_key})
    ).status_code == 401
    assert (await api.client.get("/me", headers=auth(alice))).json()["name"] == "alice"


async def test_admin_routes_are_403_for_users(
    api: Api, alice: NewUser, db_pool: asyncpg.Pool[Any]
) -> None:
    root = await create_user(db_pool, name="root", credits=0, role="admin")
    for method, path in [
        ("GET", "/admin/users"),
        ("GET", "/admin/handlers"),
        ("POST", "/admin/users/alice/identities"),
    ]:
        assert (await api.client.request(method, path)).status_code == 401
        assert (await api.client.request(method, path, headers=auth(alice))).status_code == 403
    assert (await api.client.get("/admin/users", headers=auth(root))).status_code == 200


async def test_a_linked_subject_signs_in_with_a_token(
    oidc_api: Api, alice: NewUser, db_pool: asyncpg.Pool[Any], signing_keys: Keys
) -> None:
    await _link(db_pool, alice, "alice-sub")
    token = signing_keys[0].token("alice-sub")
    me = await oidc_api.client.get("/me", headers=bearer(token))
    assert me.status_code == 200
    assert me.json()["name"] == "alice"
    submitted = await oidc_api.client.post(
        "/svc/demo/echo", json={"text": "via oidc"}, headers=bearer(token)
    )
    assert submitted.status_code == 202
    # API keys keep working beside tokens.
    assert (await oidc_api.client.get("/me", headers=auth(alice))).status_code == 200


def _unsigned(payload: dict[str, Any], header: dict[str, Any]) -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    return f"{part(header)}.{part(payload)}."


async def test_bad_tokens_are_401(
    oidc_api: Api, alice: NewUser, db_pool: asyncpg.Pool[Any], signing_keys: Keys
) -> None:
    await _link(db_pool, alice, "alice-sub")
    good, other = signing_keys
    public_pem = (
        good.private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice-sub", "exp": 4_102_444_800}
    valid = good.token("alice-sub")
    header, payload, signature = valid.split(".")
    tampered_payload = (
        base64.urlsafe_b64encode(json.dumps({**claims, "sub": "someone-else"}).encode())
        .decode()
        .rstrip("=")
    )
    hs256 = jwt.encode(claims, "x" * 64, algorithm="HS256", headers={"kid": good.kid})
    # HS256 keyed with the public key, the classic algorithm confusion.
    confused = ".".join(hs256.split(".")[:2])
    mac = hmac.new(public_pem.encode(), confused.encode(), hashlib.sha256).digest()
    confused += "." + base64.urlsafe_b64encode(mac).decode().rstrip("=")
    cases = {
        "expired": good.token("alice-sub", ttl_s=-120),
        "wrong audience": good.token("alice-sub", aud="someone-else"),
        "wrong issuer": good.token("alice-sub", iss="https://evil.example.test"),
        "unknown kid": other.token("alice-sub"),
        "alg none": _unsigned(claims, {"alg": "none", "kid": good.kid, "typ": "JWT"}),
        "HS256 confusion": confused,
        "tampered": f"{header}.{tampered_payload}.{signature}",
        "no exp": jwt.encode(
            {k: v for k, v in claims.items() if k != "exp"},
            good.private,
            algorithm="RS256",
            headers={"kid": good.kid},
        ),
        "unlinked subject": good.token("nobody"),
        "garbage": "eyJhbGciOi.not.a-token",
    }
    for name, token in cases.items():
        r = await oidc_api.client.get("/me", headers=bearer(token))
        assert r.status_code == 401, (name, r.text)
        assert r.json()["code"] == "unauthorized", name
    assert (await oidc_api.client.get("/me", headers=bearer(valid))).status_code == 200


async def test_keys_rotated_by_the_issuer_are_fetched_on_unknown_kid(
    servers: ServerUrls,
    alice: NewUser,
    db_pool: asyncpg.Pool[Any],
    signing_keys: Keys,
    jwks: JwksServer,
) -> None:
    await _link(db_pool, alice, "alice-sub")
    settings = settings_for(servers, **oidc_settings(jwks, oidc_jwks_cooldown_s=0.5))
    async with serving(settings) as api:
        await _rotation(api, signing_keys, jwks)


async def _rotation(oidc_api: Api, signing_keys: Keys, jwks: JwksServer) -> None:
    assert (
        await oidc_api.client.get("/me", headers=bearer(signing_keys[0].token("alice-sub")))
    ).status_code == 200
    assert (
        await oidc_api.client.get(
            "/me", headers=bearer(signing_keys[0].token("alice-sub", jti="2"))
        )
    ).status_code == 200
    assert jwks.fetches == 1  # cached
    unknown = await oidc_api.client.get("/me", headers=bearer(signing_keys[1].token("alice-sub")))
    assert unknown.status_code == 401  # within the cooldown of the first fetch: not refetched
    assert jwks.fetches == 1
    jwks.keys.append(signing_keys[1].jwk())
    await asyncio.sleep(0.6)
    rotated = await oidc_api.client.get("/me", headers=bearer(signing_keys[1].token("alice-sub")))
    assert rotated.status_code == 200
    assert jwks.fetches == 2


async def test_unknown_subjects_are_provisioned_when_configured(
    servers: ServerUrls, db_pool: asyncpg.Pool[Any], signing_keys: Keys, jwks: JwksServer
) -> None:
    settings = settings_for(servers, **oidc_settings(jwks, oidc_provision=True))
    async with serving(settings) as api:
        token = signing_keys[0].token("new-person")
        first, second = await asyncio.gather(
            api.client.get("/me", headers=bearer(token)),
            api.client.get("/me", headers=bearer(signing_keys[0].token("new-person", jti="b"))),
        )
        assert first.status_code == second.status_code == 200
        assert first.json()["id"] == second.json()["id"]
        assert (first.json()["role"], first.json()["balance"]) == ("user", 0)
        assert await db_pool.fetchval("SELECT count(*) FROM identities") == 1


async def test_an_unreachable_identity_provider_is_503(
    servers: ServerUrls, alice: NewUser, signing_keys: Keys, jwks: JwksServer
) -> None:
    jwks.url = f"http://127.0.0.1:{free_port()}/jwks.json"  # nothing listens there
    async with serving(settings_for(servers, **oidc_settings(jwks))) as api:
        r = await api.client.get("/me", headers=bearer(signing_keys[0].token("alice-sub")))
        assert r.status_code == 503
        assert r.headers["retry-after"] == "5"
        assert (await api.client.get("/me", headers=auth(alice))).status_code == 200
        # A WebSocket is told to come back later rather than failing after its handshake.
        token = signing_keys[0].token("alice-sub")
        async with connect(
            f"{api.ws_url}/ws", subprotocols=[Subprotocol("bearer"), Subprotocol(token)]
        ) as ws:
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 10)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1013


async def test_admins_link_identities(api: Api, alice: NewUser, db_pool: asyncpg.Pool[Any]) -> None:
    root = await create_user(db_pool, name="root", credits=0, role="admin")
    body = {"issuer": ISSUER, "subject": "alice-sub"}
    linked = await api.client.post("/admin/users/alice/identities", json=body, headers=auth(root))
    assert linked.status_code == 201
    assert linked.json()["user_id"] == str(alice.id)
    again = await api.client.post("/admin/users/alice/identities", json=body, headers=auth(root))
    assert again.status_code == 409
    missing = await api.client.post("/admin/users/nobody/identities", json=body, headers=auth(root))
    assert missing.status_code == 404
    smuggled = await api.client.post(
        "/admin/users/alice/identities",
        json={**body, "subject": "x", "user_id": str(root.id)},
        headers=auth(root),
    )
    assert smuggled.status_code == 422
    assert await db_pool.fetchval("SELECT count(*) FROM identities") == 1


async def test_the_leeway_counts_the_same_on_every_call_of_a_token(
    servers: ServerUrls,
    db_pool: asyncpg.Pool[Any],
    alice: NewUser,
    signing_keys: Keys,
    jwks: JwksServer,
) -> None:
    """A token 5 s past its ``exp``, within a 30 s leeway: the signature check let its first
    call in and the cached check refused the next. Every check now ends it at ``exp`` plus
    the leeway (the WebSocket's close too: ``Principal.expires_at``)."""
    await _link(db_pool, alice, "alice-sub")
    settings = settings_for(servers, **oidc_settings(jwks, oidc_leeway_s=30))
    async with serving(settings) as api:
        token = bearer(signing_keys[0].token("alice-sub", ttl_s=-5))
        assert (await api.client.get("/me", headers=token)).status_code == 200
        assert (await api.client.get("/me", headers=token)).status_code == 200
        late = bearer(signing_keys[0].token("alice-sub", ttl_s=-35, jti="late"))
        assert (await api.client.get("/me", headers=late)).status_code == 401
