"""``GET /svc/request/{id}`` shows where a pending request stands among its user's own pending
requests for its handler (never another user's activity), and an ETA from the rate at which the
user's requests for it ended in the last minute; once it runs or ends there is neither. Past the
unfinished cap, the 429's ``Retry-After`` comes from the same rate."""

import asyncio
import uuid
from typing import Any

import asyncpg
import orjson
from redis.asyncio import Redis
from websockets.asyncio.client import connect

from libs.accounts import NewUser
from libs.contracts import RESULTS_STREAM, ResultMessage
from libs.streams import encode
from tests.integration.api.conftest import Api, auth, serving, settings_for
from tests.support import ServerUrls, load_demo_catalog


async def _submit(api: Api, user: NewUser, action: str, text: str) -> str:
    r = await api.client.post(f"/svc/demo/{action}", json={"text": text}, headers=auth(user))
    assert r.status_code == 202
    return str(r.json()["id"])


async def _place(api: Api, user: NewUser, request_id: str) -> tuple[object, object]:
    r = await api.client.get(f"/svc/request/{request_id}", headers=auth(user))
    assert r.status_code == 200
    return r.json()["queue_position"], r.json()["queue_eta_s"]


async def _position(api: Api, user: NewUser, request_id: str) -> object:
    return (await _place(api, user, request_id))[0]


async def _end(api: Api, redis: Redis, user: NewUser, request_ids: list[str]) -> None:
    """Report the requests succeeded, as a worker does, and wait until they are recorded."""
    for request_id in request_ids:
        done = ResultMessage(
            request_id=uuid.UUID(request_id), attempt=1, kind="succeeded", worker="w", results=[]
        )
        await redis.xadd(RESULTS_STREAM, encode(done))
    for request_id in request_ids:
        for _ in range(200):
            r = await api.client.get(f"/svc/request/{request_id}", headers=auth(user))
            if r.json()["status"] == "succeeded":
                break
            await asyncio.sleep(0.05)
        assert r.json()["status"] == "succeeded"


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


async def test_the_eta_follows_the_rate_at_which_the_callers_requests_ended(
    api: Api, alice: NewUser, bob: NewUser, redis_client: Redis
) -> None:
    ids = [await _submit(api, alice, "echo", f"e{n}") for n in range(4)]
    others = [await _submit(api, bob, "echo", f"o{n}") for n in range(3)]
    assert await _place(api, alice, ids[0]) == (1, None)  # nothing ended yet: no estimate
    await _end(api, redis_client, bob, others)
    assert await _place(api, alice, ids[0]) == (1, None)  # bob's pace is not alice's
    await _end(api, redis_client, alice, ids[:2])
    # Two ended in the last minute: one every 30 s.
    assert [await _place(api, alice, i) for i in ids[2:]] == [(1, 30), (2, 60)]
    await _end(api, redis_client, alice, ids[2:])
    assert await _place(api, alice, ids[3]) == (None, None)


async def test_past_the_cap_retry_after_follows_the_rate_at_which_requests_ended(
    servers: ServerUrls, db_pool: "asyncpg.Pool[Any]", alice: NewUser, redis_client: Redis
) -> None:
    await load_demo_catalog(db_pool)
    async with serving(settings_for(servers, max_unfinished_per_user=2)) as capped:

        async def refused() -> str:
            r = await capped.client.post("/svc/demo/echo", json={"text": "x"}, headers=auth(alice))
            assert r.status_code == 429
            assert r.json()["retry_after"] == int(r.headers["Retry-After"])
            return r.headers["Retry-After"]

        first = [await _submit(capped, alice, "echo", f"c{n}") for n in range(2)]
        assert await refused() == "60"  # none ended in the last minute
        await _end(capped, redis_client, alice, first)
        for n in range(2):
            await _submit(capped, alice, "echo", f"d{n}")
        assert await refused() == "30"  # two ended in the last minute: one every 30 s


async def test_the_requests_socket_sends_its_place_while_it_waits(
    servers: ServerUrls, db_pool: "asyncpg.Pool[Any]", alice: NewUser, redis_client: Redis
) -> None:
    await load_demo_catalog(db_pool)
    async with serving(settings_for(servers, ws_place_every_s=0.1)) as api:
        ids = [await _submit(api, alice, "echo", f"w{n}") for n in range(3)]
        url = f"{api.ws_url}/ws/requests/{ids[2]}"
        async with connect(url, additional_headers=auth(alice)) as ws:

            async def receive() -> dict[str, Any]:
                message: dict[str, Any] = orjson.loads(await asyncio.wait_for(ws.recv(), 5))
                return message

            first = await receive()
            assert (first["status"], first["queue_position"], first["queue_eta_s"]) == (
                "pending",
                3,
                None,
            )
            await _end(api, redis_client, alice, ids[:1])
            # One of hers ended in the last minute: second in line, about 2 × 60 s to go.
            assert await receive() == {
                "event": "queue",
                "id": ids[2],
                "queue_position": 2,
                "queue_eta_s": 120,
            }
            started = ResultMessage(
                request_id=uuid.UUID(ids[2]), attempt=1, kind="started", worker="w"
            )
            await redis_client.xadd(RESULTS_STREAM, encode(started))
            assert (await receive())["status"] == "running"  # and no place after it
            await _end(api, redis_client, alice, ids[2:])
            final = await receive()
            assert final["status"] == "succeeded"
