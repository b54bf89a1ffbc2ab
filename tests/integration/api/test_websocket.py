import asyncio
import uuid
from typing import Any
from urllib.parse import urlencode

import asyncpg
import orjson
import pytest
from redis.asyncio import Redis
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Origin

from libs.accounts import NewUser
from libs.contracts import RESULTS_STREAM, ResultMessage
from libs.streams import encode
from tests.integration.api.conftest import Api, auth, serving, settings_for
from tests.support import ServerUrls, load_demo_catalog


async def _submit(api: Api, user: NewUser, text: str) -> str:
    r = await api.client.post("/svc/demo/echo", json={"text": text}, headers=auth(user))
    assert r.status_code == 202
    return str(r.json()["id"])


async def _report(redis: Redis, request_id: str, kind: str, **extra: Any) -> None:
    """Write a result as a worker would; the API's own results consumer picks it up."""
    message = ResultMessage.model_validate(
        {"request_id": request_id, "attempt": 1, "kind": kind, "worker": "test", **extra}
    )
    await redis.xadd(RESULTS_STREAM, encode(message))


async def _recv(ws: ClientConnection) -> dict[str, Any]:
    return orjson.loads(await asyncio.wait_for(ws.recv(), timeout=5))  # type: ignore[no-any-return]


async def test_sends_current_state_then_every_change_until_final(
    api: Api, alice: NewUser, redis_client: Redis
) -> None:
    request_id = await _submit(api, alice, "hello")
    async with connect(
        f"{api.ws_url}/ws/requests/{request_id}", additional_headers=auth(alice)
    ) as ws:
        first = await _recv(ws)
        assert (first["id"], first["status"]) == (request_id, "pending")
        await _report(redis_client, request_id, "started")
        assert (await _recv(ws))["status"] == "running"
        assert "usage" not in first
        usage = {"input_tokens": 2, "output_tokens": 5}
        await _report(redis_client, request_id, "succeeded", results=["hello"], usage=usage)
        final = await _recv(ws)
        assert (final["status"], final["results"], final["usage"]) == (
            "succeeded",
            ["hello"],
            usage,
        )
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), timeout=5)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1000

    async with connect(
        f"{api.ws_url}/ws/requests/{request_id}",
        subprotocols=["bearer", alice.api_key],  # type: ignore[list-item]
    ) as again:
        assert again.subprotocol == "bearer"
        state = await _recv(again)
        assert (state["status"], state["results"]) == ("succeeded", ["hello"])
        assert state["usage"] == {"input_tokens": 2, "output_tokens": 5}


async def test_refuses_strangers_and_missing_credentials(
    api: Api, alice: NewUser, bob: NewUser
) -> None:
    request_id = await _submit(api, alice, "private")
    cases = [
        (f"/ws/requests/{request_id}", auth(bob), 4404),
        (f"/ws/requests/{uuid.uuid4()}", auth(bob), 4404),
        ("/ws/requests/not-an-id", auth(bob), 4404),
        (f"/ws/requests/{request_id}", {}, 4401),
        ("/ws", {"Authorization": "Bearer rk_nope"}, 4401),
    ]
    for path, headers, code in cases:
        async with connect(f"{api.ws_url}{path}", additional_headers=headers) as ws:
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), timeout=5)
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == code, path


async def test_user_stream_shows_unfinished_then_changes_of_own_requests_only(
    api: Api, alice: NewUser, bob: NewUser, redis_client: Redis
) -> None:
    waiting = await _submit(api, alice, "waiting")
    async with connect(f"{api.ws_url}/ws", additional_headers=auth(alice)) as ws:
        snapshot = await _recv(ws)
        assert (snapshot["id"], snapshot["status"]) == (waiting, "pending")
        later = await _submit(api, alice, "later")
        strangers = await _submit(api, bob, "bob's")
        await _report(redis_client, strangers, "succeeded", results=["no"])
        await _report(redis_client, later, "succeeded", results=["yes"])
        # Ended without a reported start: watchers still see it running first.
        assert [((u := await _recv(ws))["id"], u["status"]) for _ in range(2)] == [
            (later, "running"),
            (later, "succeeded"),
        ]
        assert u["results"] == ["yes"]
        await _report(redis_client, waiting, "failed", error="boom")
        assert [((u := await _recv(ws))["id"], u["status"]) for _ in range(2)] == [
            (waiting, "running"),
            (waiting, "failed"),
        ]
        assert u["error"] == "boom"


async def test_reconnecting_with_since_replays_what_changed_while_away(
    api: Api, alice: NewUser, redis_client: Redis
) -> None:
    first = await _submit(api, alice, "one")
    async with connect(f"{api.ws_url}/ws", additional_headers=auth(alice)) as ws:
        seen = await _recv(ws)
    assert (seen["id"], seen["status"]) == (first, "pending")
    second = await _submit(api, alice, "two")
    await _report(redis_client, first, "succeeded", results=["one"])
    await _report(redis_client, second, "failed", error="nope")
    async with asyncio.timeout(5):
        for request_id in (first, second):
            url = f"/svc/request/{request_id}"
            while (await api.client.get(url, headers=auth(alice))).json()["status"] == "pending":
                await asyncio.sleep(0.02)
    query = urlencode({"since": seen["updated_at"]})
    async with connect(f"{api.ws_url}/ws?{query}", additional_headers=auth(alice)) as ws:
        replayed = [await _recv(ws), await _recv(ws)]
    assert {(s["id"], s["status"]) for s in replayed} == {(first, "succeeded"), (second, "failed")}


async def test_foreign_browser_origins_are_refused_when_origins_are_configured(
    servers: ServerUrls, db_pool: "asyncpg.Pool[Any]", alice: NewUser
) -> None:
    await load_demo_catalog(db_pool)
    settings = settings_for(servers, ws_allowed_origins=["https://app.example"])
    async with serving(settings) as api:
        url = f"{api.ws_url}/ws"
        with pytest.raises(InvalidStatus) as refused:
            await connect(
                url, additional_headers=auth(alice), origin=Origin("https://evil.example")
            )
        assert refused.value.response.status_code == 403
        for origin in (Origin("https://app.example"), None):
            async with connect(url, additional_headers=auth(alice), origin=origin) as ws:
                await ws.ping()


async def test_a_socket_whose_key_is_revoked_is_closed(
    servers: ServerUrls, db_pool: "asyncpg.Pool[Any]", alice: NewUser
) -> None:
    await load_demo_catalog(db_pool)
    async with serving(settings_for(servers, auth_cache_ttl_s=0.2)) as api:
        await _submit(api, alice, "keeps the socket busy")
        ws = await connect(f"{api.ws_url}/ws", additional_headers=auth(alice))
        await _recv(ws)  # the snapshot: the socket is authenticated and streaming
        await db_pool.execute("UPDATE api_keys SET revoked_at = now() WHERE user_id = $1", alice.id)
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), timeout=5)
        assert closed.value.rcvd is not None
        assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (
            4401,
            "the API key was revoked",
        )
