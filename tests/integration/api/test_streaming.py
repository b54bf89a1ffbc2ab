"""Token streaming: a worker's chunks reach a WebSocket live, and a client that reconnects with
the last event id it saw gets the rest, without a gap or a duplicate, then the final state."""

import asyncio
import uuid
from typing import Any

import asyncpg
import orjson
import pytest
from redis.asyncio import Redis
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from libs.accounts import NewUser
from libs.catalog import CatalogSpec, apply_catalog
from libs.contracts import CHUNKS_CHANNEL, TaskMessage
from services.api.ws.hub import Hub
from services.worker._chunks import ChunkPublisher
from tests.integration.api.conftest import Api, auth
from tests.integration.worker.helpers import running

STREAM_CATALOG = CatalogSpec.model_validate(
    {
        "handlers": [{"id": "echo.stream"}],
        "offers": [
            {
                "service": "demo",
                "action": "stream",
                "price": 3,
                "prompt_template": "{text}",
                "handler": "echo.stream",
                "params": {"delay_ms": 150},
            }
        ],
    }
)
PROMPT = "the quick brown fox jumps over the lazy dog again"


@pytest.fixture
async def stream_offer(api: Api, db_pool: "asyncpg.Pool[Any]") -> None:
    async with db_pool.acquire() as conn:
        await apply_catalog(conn, STREAM_CATALOG)


async def _recv(ws: ClientConnection) -> dict[str, Any]:
    return orjson.loads(await asyncio.wait_for(ws.recv(), timeout=10))  # type: ignore[no-any-return]


async def _until_closed(ws: ClientConnection) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    try:
        while True:
            messages.append(await _recv(ws))
    except ConnectionClosed:
        return messages


def _order(event_id: str) -> tuple[int, int]:
    ms, seq = event_id.split("-")
    return int(ms), int(seq)


@pytest.mark.usefixtures("stream_offer")
async def test_chunks_stream_live_and_resume_after_the_last_event_id(
    api: Api, alice: NewUser, redis_client: Redis
) -> None:
    r = await api.client.post("/svc/demo/stream", json={"text": PROMPT}, headers=auth(alice))
    assert r.status_code == 202
    request_id = r.json()["id"]
    url = f"{api.ws_url}/ws/requests/{request_id}"

    async with running(redis_client):
        first: list[dict[str, Any]] = []
        async with connect(url, additional_headers=auth(alice)) as ws:
            assert (await _recv(ws))["status"] in ("pending", "running")
            while len([m for m in first if m.get("event") == "chunk"]) < 3:
                first.append(await _recv(ws))
        chunks = [m for m in first if m.get("event") == "chunk"]
        assert all("status" not in m for m in chunks)
        last = chunks[-1]["event_id"]

        async with connect(f"{url}?last_event_id={last}", additional_headers=auth(alice)) as ws:
            second = await _until_closed(ws)

    rest = [m for m in second if m.get("event") == "chunk"]
    assert rest, "the reconnected client got none of the remaining chunks"
    ids = [m["event_id"] for m in chunks + rest]
    assert [_order(i) for i in ids] == sorted({_order(i) for i in ids})  # increasing, no repeat
    assert "".join(m["text"] for m in chunks + rest) == PROMPT
    assert {m["id"] for m in chunks + rest} == {request_id}
    final = second[-1]
    assert (final["status"], final["results"]) == ("succeeded", [PROMPT])

    # Reconnecting once it has ended: the chunks after the given id, then the final state.
    async with connect(f"{url}?last_event_id={ids[-2]}", additional_headers=auth(alice)) as ws:
        replay = await _until_closed(ws)
    assert [m.get("event_id") for m in replay] == [ids[-1], None]
    assert replay[-1]["status"] == "succeeded"


@pytest.mark.usefixtures("stream_offer")
async def test_a_malformed_last_event_id_is_refused(api: Api, alice: NewUser) -> None:
    r = await api.client.post("/svc/demo/stream", json={"text": "x"}, headers=auth(alice))
    url = f"{api.ws_url}/ws/requests/{r.json()['id']}?last_event_id=latest"
    async with connect(url, additional_headers=auth(alice)) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), timeout=5)
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (
        4400,
        "last_event_id must be an event id such as 1-0",
    )


async def test_a_published_chunk_wakes_the_sockets_watching_that_request(
    redis_client: Redis,
) -> None:
    hub = Hub(redis_client, queue_size=10)
    running_hub = asyncio.create_task(hub.run())
    watched, other = uuid.uuid4(), uuid.uuid4()
    try:
        with hub.watch_chunks(watched) as wake, hub.watch_chunks(other) as quiet:
            while await redis_client.pubsub_numsub(CHUNKS_CHANNEL) == [
                (CHUNKS_CHANNEL.encode(), 0)
            ]:
                await asyncio.sleep(0.01)
            task = TaskMessage(request_id=watched, attempt=1, handler="echo.stream", prompt="p")
            await ChunkPublisher(redis_client).sink_for(task)("p")
            await asyncio.wait_for(wake.wait(), 2)
            assert not quiet.is_set()
    finally:
        running_hub.cancel()
        await asyncio.gather(running_hub, return_exceptions=True)
