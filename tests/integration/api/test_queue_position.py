"""``GET /svc/request/{id}`` shows where a pending request stands among its user's own pending
requests for its handler (never another user's activity); once it runs or ends there is no
position."""

import asyncio
import uuid

from redis.asyncio import Redis

from libs.accounts import NewUser
from libs.contracts import RESULTS_STREAM, ResultMessage
from libs.streams import encode
from tests.integration.api.conftest import Api, auth


async def _submit(api: Api, user: NewUser, action: str, text: str) -> str:
    r = await api.client.post(f"/svc/demo/{action}", json={"text": text}, headers=auth(user))
    assert r.status_code == 202
    return str(r.json()["id"])


async def _position(api: Api, user: NewUser, request_id: str) -> object:
    r = await api.client.get(f"/svc/request/{request_id}", headers=auth(user))
    assert r.status_code == 200
    return r.json()["queue_position"]


async def test_pending_requests_show_their_place_in_the_queue(
    api: Api, alice: NewUser, bob: NewUser, redis_client: Redis
) -> None:
    first = await _submit(api, alice, "echo", "1")
    second = await _submit(api, bob, "echo", "2")
    third = await _submit(api, alice, "echo", "3")
    other_handler = await _submit(api, alice, "sleep", "4")

    assert [await _position(api, alice, first), await _position(api, bob, second)] == [1, 1]
    assert await _position(api, alice, third) == 2
    assert await _position(api, alice, other_handler) == 1
    # The attack: bob watches his position to learn how much alice submits. It never moves.
    for n in range(5):
        await _submit(api, alice, "echo", f"more {n}")
    assert await _position(api, bob, second) == 1

    started = ResultMessage(request_id=uuid.UUID(first), attempt=1, kind="started", worker="w")
    await redis_client.xadd(RESULTS_STREAM, encode(started))
    for _ in range(200):
        if await _position(api, alice, first) is None:
            break
        await asyncio.sleep(0.05)
    assert await _position(api, alice, first) is None  # running: no longer queued
    assert await _position(api, alice, third) == 1
    listed = await api.client.get("/svc/requests", headers=auth(alice))
    assert {item["queue_position"] for item in listed.json()["items"]} == {None}
