"""Every view of a request shows a file result as its reference plus the path that serves it:
the request, the list and the WebSocket's states (live and on connect)."""

import asyncio
import uuid
from typing import Any

import asyncpg
import orjson
from redis.asyncio import Redis
from websockets.asyncio.client import ClientConnection, connect

from libs.accounts import NewUser
from libs.contracts import RESULTS_STREAM, ResultMessage
from libs.contracts.files import FileRef, result_file_id
from libs.streams import encode
from services.api.files.links import linked_inputs, linked_results
from tests.integration.api.conftest import Api, auth


async def _recv(ws: ClientConnection) -> dict[str, Any]:
    return orjson.loads(await asyncio.wait_for(ws.recv(), timeout=5))  # type: ignore[no-any-return]


async def _final(ws: ClientConnection) -> dict[str, Any]:
    while (state := await _recv(ws))["status"] != "succeeded":
        pass
    return state


def _ref(request_id: str) -> dict[str, Any]:
    return FileRef(
        id=result_file_id(uuid.UUID(request_id), None, 1),
        sha256="cd" * 32,
        media_type="image/png",
        bytes=10,
        width=2,
        height=2,
    ).model_dump()


async def test_a_file_result_is_shown_with_its_url(
    api: Api, alice: NewUser, redis_client: Redis, db_pool: "asyncpg.Pool[Any]"
) -> None:
    r = await api.client.post("/svc/demo/echo", json={"text": "draw"}, headers=auth(alice))
    request_id = r.json()["id"]
    ref = _ref(request_id)
    linked = {**ref, "url": f"/files/{ref['id']}/content"}
    async with (
        connect(f"{api.ws_url}/ws/requests/{request_id}", additional_headers=auth(alice)) as one,
        connect(f"{api.ws_url}/ws", additional_headers=auth(alice)) as every,
    ):
        assert (await _recv(one))["status"] == "pending"
        assert (await _recv(every))["status"] == "pending"
        message = ResultMessage.model_validate(
            {
                "request_id": request_id,
                "attempt": 1,
                "kind": "succeeded",
                "worker": "test",
                "results": ["a caption", ref],
            }
        )
        await redis_client.xadd(RESULTS_STREAM, encode(message))
        assert (await _final(one))["results"] == ["a caption", linked]
        assert (await _final(every))["results"] == ["a caption", linked]

    stored = await db_pool.fetchval("SELECT results FROM requests WHERE id = $1::uuid", request_id)
    assert stored == ["a caption", ref]  # kept as the worker reported it
    view = (await api.client.get(f"/svc/request/{request_id}", headers=auth(alice))).json()
    assert view["results"] == ["a caption", linked]
    assert view["inputs"] == {"text": "draw"}
    (listed,) = (await api.client.get("/svc/requests", headers=auth(alice))).json()["items"]
    assert listed["results"] == ["a caption", linked]
    async with connect(
        f"{api.ws_url}/ws/requests/{request_id}", additional_headers=auth(alice)
    ) as again:
        assert (await _recv(again))["results"] == ["a caption", linked]


def test_views_without_files_are_left_as_they_are() -> None:
    results = ["text", {"type": "json"}, 3]
    assert linked_results(results) is results
    assert linked_results(None) is None
    inputs = {"text": "hi"}
    assert linked_inputs(inputs, None) is inputs
    odd = [{"type": "file"}, {"type": "file", "id": 7}]
    assert linked_results(odd) is odd  # not references: no id to link
