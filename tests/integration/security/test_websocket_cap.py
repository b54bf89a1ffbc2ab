"""One user cannot hold an unbounded number of WebSockets: past ``RELAI_WS_MAX_PER_USER`` on an
API process, a new socket is closed at once with 4429; another user is unaffected, and every way
a socket ends gives its slot back."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from redis.asyncio import Redis
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from libs.accounts import NewUser
from libs.contracts import RESULTS_STREAM, ResultMessage
from libs.streams import encode
from services.api.settings import ApiSettings
from tests.integration.api.conftest import Api, auth, serving, settings_for
from tests.integration.security.conftest import (
    ISSUER,
    JwksServer,
    SigningKey,
    bearer,
    oidc_settings,
)
from tests.support import ServerUrls, load_demo_catalog

CAP = 3
DEFAULT_CAP: int = ApiSettings.model_fields["ws_max_per_user"].default


def _refusal(cap: int) -> tuple[int, str]:
    return 4429, f"too many open WebSockets (at most {cap} per user)"


@pytest.fixture
async def capped(
    servers: ServerUrls, db_pool: asyncpg.Pool[Any], jwks: JwksServer
) -> AsyncIterator[Api]:
    await load_demo_catalog(db_pool)
    settings = settings_for(servers, ws_max_per_user=CAP, **oidc_settings(jwks))
    async with serving(settings) as api:
        yield api


async def _submit(api: Api, headers: dict[str, str], text: str = "pending") -> str:
    """A request, which stays pending (no worker runs here) unless a result is reported."""
    r = await api.client.post("/svc/demo/echo", json={"text": text}, headers=headers)
    assert r.status_code == 202, r.text
    return str(r.json()["id"])


async def _open(
    api: Api, headers: dict[str, str], path: str = "/ws", *, cap: int = CAP
) -> ClientConnection | None:
    """A socket the server accepted (its first message, the snapshot, arrived), or None when it
    was refused for the cap; any other close fails the test."""
    ws = await connect(f"{api.ws_url}{path}", additional_headers=headers)
    try:
        await asyncio.wait_for(ws.recv(), 5)
    except ConnectionClosed:
        assert (ws.close_code, ws.close_reason) == _refusal(cap)
        return None
    return ws


async def _open_many(
    api: Api, headers: dict[str, str], n: int, *, cap: int = CAP
) -> list[ClientConnection]:
    """Open ``n`` sockets at once; the accepted ones."""
    opened = await asyncio.gather(*(_open(api, headers, cap=cap) for _ in range(n)))
    return [ws for ws in opened if ws is not None]


async def _close(sockets: list[ClientConnection]) -> None:
    await asyncio.gather(*(ws.close() for ws in sockets))


async def _cap_is_whole(api: Api, headers: dict[str, str]) -> None:
    """The user's ``CAP`` slots are all free again (the server ends a closed socket's handler
    a moment after the close), and one more socket is still refused."""
    deadline = time.monotonic() + 5
    while len(accepted := await _open_many(api, headers, CAP)) < CAP:
        await _close(accepted)
        assert time.monotonic() < deadline, f"only {len(accepted)} of {CAP} slots came back"
        await asyncio.sleep(0.1)
    assert await _open(api, headers) is None
    await _close(accepted)


async def _closed(ws: ClientConnection, timeout: float = 5) -> int:
    """The close code the server sent, after any messages before it."""
    with contextlib.suppress(ConnectionClosed):
        while True:
            await asyncio.wait_for(ws.recv(), timeout)
    assert ws.close_code is not None
    return ws.close_code


async def _report(redis: Redis, request_id: str, kind: str) -> None:
    message = ResultMessage.model_validate(
        {"request_id": request_id, "attempt": 1, "kind": kind, "worker": "test"}
    )
    await redis.xadd(RESULTS_STREAM, encode(message))


async def test_a_user_gets_exactly_the_cap_and_another_user_is_unaffected(
    capped: Api, alice: NewUser, bob: NewUser
) -> None:
    for user in (alice, bob):
        await _submit(capped, auth(user))  # what each socket's snapshot shows first
    accepted = await _open_many(capped, auth(alice), CAP + 5)
    assert len(accepted) == CAP
    # The refused ones hold nothing: bob gets his own slots, alice none more.
    bobs = await _open_many(capped, auth(bob), CAP)
    assert len(bobs) == CAP
    assert await _open(capped, auth(alice)) is None
    # Closing one frees one.
    await accepted.pop().close()
    deadline = time.monotonic() + 5
    while (again := await _open(capped, auth(alice))) is None:
        assert time.monotonic() < deadline, "the closed socket's slot did not come back"
        await asyncio.sleep(0.05)
    accepted.append(again)
    assert await _open(capped, auth(alice)) is None
    await _close([*accepted, *bobs])
    await _cap_is_whole(capped, auth(alice))


async def test_the_default_cap_holds_against_hundreds_of_sockets(api: Api, alice: NewUser) -> None:
    await _submit(api, auth(alice))
    accepted = await _open_many(api, auth(alice), DEFAULT_CAP + 200, cap=DEFAULT_CAP)
    assert len(accepted) == DEFAULT_CAP
    await _close(accepted)


async def test_every_way_a_socket_ends_gives_its_slot_back(
    capped: Api,
    alice: NewUser,
    db_pool: asyncpg.Pool[Any],
    redis_client: Redis,
    signing_keys: tuple[SigningKey, SigningKey],
) -> None:
    headers = auth(alice)
    pending = await _submit(capped, headers)  # what each socket's snapshot shows first
    # The server closes at once: no such request, a malformed parameter (more times than the cap).
    for path, code in (
        ("/ws/requests/00000000-0000-0000-0000-000000000000", 4404),
        (f"/ws/requests/{pending}?last_event_id=bad", 4400),
    ):
        for _ in range(CAP + 1):
            async with connect(f"{capped.ws_url}{path}", additional_headers=headers) as ws:
                assert await _closed(ws) == code
    # The server closes after a request's final state.
    for n in range(CAP + 1):
        request_id = await _submit(capped, headers, f"final {n}")
        watching = await _open(capped, headers, f"/ws/requests/{request_id}")
        assert watching is not None
        await _report(redis_client, request_id, "succeeded")
        assert await _closed(watching) == 1000
    await _cap_is_whole(capped, headers)
    # The client vanishes without a close handshake.
    vanished = await _open_many(capped, headers, CAP)
    assert len(vanished) == CAP
    for ws in vanished:
        ws.transport.abort()
    await _cap_is_whole(capped, headers)
    # The credential expires: the server closes with 4401.
    await db_pool.execute(
        "INSERT INTO identities (issuer, subject, user_id) VALUES ($1, 'a', $2)", ISSUER, alice.id
    )
    token = bearer(signing_keys[0].token("a", ttl_s=2))
    expiring = await _open_many(capped, token, CAP)
    assert len(expiring) == CAP
    assert await _open(capped, headers) is None  # a token and a key of one user share the cap
    for ws in expiring:
        assert await _closed(ws, timeout=10) == 4401
    await _cap_is_whole(capped, headers)
