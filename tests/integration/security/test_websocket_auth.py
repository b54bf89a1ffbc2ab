"""WebSocket authentication: tokens in ``Sec-WebSocket-Protocol``, single-use tickets, origins,
and sockets closed (4401) when their credential expires or is revoked."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Origin, Subprotocol

from libs.accounts import NewUser
from tests.integration.api.conftest import Api, auth, serving, settings_for
from tests.integration.security.conftest import (
    ISSUER,
    JwksServer,
    SigningKey,
    bearer,
    oidc_settings,
)
from tests.support import ServerUrls, load_demo_catalog

Keys = tuple[SigningKey, SigningKey]


async def _submit(api: Api, headers: dict[str, str], text: str = "hello") -> str:
    r = await api.client.post("/svc/demo/echo", json={"text": text}, headers=headers)
    assert r.status_code == 202, r.text
    return str(r.json()["id"])


async def _recv(ws: ClientConnection) -> dict[str, Any]:
    return orjson.loads(await asyncio.wait_for(ws.recv(), timeout=5))  # type: ignore[no-any-return]


async def _drain(ws: ClientConnection, timeout: float) -> None:
    while True:
        await asyncio.wait_for(ws.recv(), timeout=timeout)


async def _closed(ws: ClientConnection, timeout: float = 5) -> tuple[int, str]:
    """The close code and reason the server sent, after any messages before them."""
    with pytest.raises(ConnectionClosed) as closed:
        await _drain(ws, timeout)
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code, closed.value.rcvd.reason


def _protocols(*names: str) -> list[Subprotocol]:
    return [Subprotocol(n) for n in names]


async def _ticket(api: Api, headers: dict[str, str]) -> str:
    r = await api.client.post("/ws/ticket", headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["expires_in"] > 0
    return str(r.json()["ticket"])


async def test_a_key_or_a_token_in_the_subprotocol_is_accepted_and_echoed(
    oidc_api: Api, alice: NewUser, db_pool: asyncpg.Pool[Any], signing_keys: Keys
) -> None:
    await db_pool.execute(
        "INSERT INTO identities (issuer, subject, user_id) VALUES ($1, 'a', $2)", ISSUER, alice.id
    )
    request_id = await _submit(oidc_api, auth(alice))
    token = signing_keys[0].token("a")
    for credential in (alice.api_key, token):
        url = f"{oidc_api.ws_url}/ws/requests/{request_id}"
        async with connect(url, subprotocols=_protocols("bearer", credential)) as ws:
            assert ws.subprotocol == "bearer"
            assert (await _recv(ws))["id"] == request_id
    url = f"{oidc_api.ws_url}/ws"
    async with connect(url, subprotocols=_protocols("bearer", "rk_wrong")) as ws:
        assert await _closed(ws) == (4401, "invalid or revoked API key")


async def test_tickets_open_one_socket_each(api: Api, alice: NewUser, bob: NewUser) -> None:
    request_id = await _submit(api, auth(alice))
    ticket = await _ticket(api, auth(alice))
    url = f"{api.ws_url}/ws/requests/{request_id}"
    async with connect(url, subprotocols=_protocols("ticket", ticket)) as ws:
        assert ws.subprotocol == "ticket"
        assert (await _recv(ws))["status"] == "pending"
    async with connect(url, subprotocols=_protocols("ticket", ticket)) as reused:
        assert await _closed(reused) == (4401, "unknown, used or expired ticket")
    async with connect(url, subprotocols=_protocols("ticket", "wst_made-up")) as made_up:
        assert (await _closed(made_up))[0] == 4401
    # A ticket carries its user: bob's ticket does not open alice's request.
    async with connect(url, subprotocols=_protocols("ticket", await _ticket(api, auth(bob)))) as ws:
        assert await _closed(ws) == (4404, "no such request")
    assert (await api.client.post("/ws/ticket")).status_code == 401


async def test_tickets_expire_and_die_with_their_key(
    servers: ServerUrls, db_pool: asyncpg.Pool[Any], alice: NewUser
) -> None:
    await load_demo_catalog(db_pool)
    settings = settings_for(servers, ws_ticket_ttl_s=1, auth_cache_ttl_s=0.2)
    async with serving(settings) as api:
        stale = await _ticket(api, auth(alice))
        await asyncio.sleep(1.5)
        async with connect(f"{api.ws_url}/ws", subprotocols=_protocols("ticket", stale)) as ws:
            assert (await _closed(ws))[0] == 4401
        orphan = await _ticket(api, auth(alice))
        await db_pool.execute("UPDATE api_keys SET revoked_at = now() WHERE user_id = $1", alice.id)
        await asyncio.sleep(0.4)
        async with connect(f"{api.ws_url}/ws", subprotocols=_protocols("ticket", orphan)) as ws:
            assert (await _closed(ws))[0] == 4401


async def test_a_socket_is_closed_when_its_token_expires(
    servers: ServerUrls,
    db_pool: asyncpg.Pool[Any],
    alice: NewUser,
    signing_keys: Keys,
    jwks: JwksServer,
) -> None:
    await load_demo_catalog(db_pool)
    await db_pool.execute(
        "INSERT INTO identities (issuer, subject, user_id) VALUES ($1, 'a', $2)", ISSUER, alice.id
    )
    async with serving(settings_for(servers, **oidc_settings(jwks))) as api:
        await _submit(api, auth(alice))
        token = signing_keys[0].token("a", ttl_s=2)
        ws = await connect(f"{api.ws_url}/ws", additional_headers=bearer(token))
        await _recv(ws)  # the snapshot: authenticated and streaming
        assert await _closed(ws, timeout=10) == (4401, "the token has expired")
        async with connect(f"{api.ws_url}/ws", additional_headers=bearer(token)) as again:
            assert await _closed(again) == (4401, "the token has expired")
        # A ticket outlives nothing: one taken with the expired token is refused too.
        assert (await api.client.post("/ws/ticket", headers=bearer(token))).status_code == 401


async def test_foreign_origins_are_403(
    servers: ServerUrls, db_pool: asyncpg.Pool[Any], alice: NewUser
) -> None:
    await load_demo_catalog(db_pool)
    settings = settings_for(servers, ws_allowed_origins=["https://app.example"])
    async with serving(settings) as api:
        ticket = await _ticket(api, auth(alice))
        with pytest.raises(InvalidStatus) as refused:
            await connect(
                f"{api.ws_url}/ws",
                subprotocols=_protocols("ticket", ticket),
                origin=Origin("https://evil.example"),
            )
        assert refused.value.response.status_code == 403
        async with connect(
            f"{api.ws_url}/ws",
            subprotocols=_protocols("ticket", ticket),  # not redeemed by the refused attempt
            origin=Origin("https://app.example"),
        ) as ws:
            assert ws.subprotocol == "ticket"
            await ws.ping()
