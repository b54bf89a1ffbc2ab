"""The HTTP metrics middleware: route templates as labels, websockets passed through, and a
client that leaves before its answer is complete counted as 499, never as a 5xx."""

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse
from prometheus_client import REGISTRY
from prometheus_client.samples import Sample
from starlette.requests import ClientDisconnect
from starlette.types import Message, Receive, Scope, Send

from services.api.metrics import CLIENT_CLOSED, UNMATCHED_ROUTE, MetricsMiddleware


def _app() -> FastAPI:
    app = FastAPI()

    @app.get("/things/{thing_id}")
    async def thing(thing_id: str) -> dict[str, str]:
        return {"id": thing_id}

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("boom")

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            while True:
                yield b"data: tick\n\n"
                await asyncio.sleep(0.01)

        return StreamingResponse(chunks(), media_type="text/event-stream")

    @app.post("/upload")
    async def upload(request: Request) -> dict[str, int]:
        return {"size": len(await request.body())}

    @app.get("/plain")
    async def plain() -> dict[str, str]:
        return {"ok": "yes"}

    app.add_middleware(MetricsMiddleware)
    return app


def _count(method: str, route: str, status: str) -> float:
    labels = {"method": method, "route": route, "status": status}
    return REGISTRY.get_sample_value("relai_http_requests_total", labels) or 0.0


async def test_labels_use_the_route_template_not_the_path() -> None:
    before = _count("GET", "/things/{thing_id}", "200")
    unmatched = _count("GET", UNMATCHED_ROUTE, "404")
    transport = httpx.ASGITransport(app=_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        for n in range(3):
            assert (await client.get(f"/things/{n}")).status_code == 200
        assert (await client.get("/missing")).status_code == 404
    assert _count("GET", "/things/{thing_id}", "200") == before + 3
    assert _count("GET", UNMATCHED_ROUTE, "404") == unmatched + 1
    assert (
        REGISTRY.get_sample_value(
            "relai_http_requests_total", {"method": "GET", "route": "/things/0", "status": "200"}
        )
        is None
    )


async def test_an_unhandled_error_counts_as_500() -> None:
    before = _count("GET", "/boom", "500")
    transport = httpx.ASGITransport(app=_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        assert (await client.get("/boom")).status_code == 500
    assert _count("GET", "/boom", "500") == before + 1


async def test_websockets_pass_through_untouched() -> None:
    seen: list[Scope] = []

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope)
        await send({"type": "websocket.accept"})

    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "websocket.connect"}

    async def send(message: Message) -> None:
        sent.append(message)

    before = sum(m.value for m in _samples())
    scope: Scope = {"type": "websocket", "path": "/ws/things", "headers": []}
    await MetricsMiddleware(inner)(scope, receive, send)
    assert seen == [scope]
    assert sent == [{"type": "websocket.accept"}]
    assert sum(m.value for m in _samples()) == before


def _samples() -> list[Sample]:
    return [
        sample
        for family in REGISTRY.collect()
        if family.name == "relai_http_requests"
        for sample in family.samples
    ]


def _server_errors(route: str) -> float:
    return sum(
        sample.value
        for sample in _samples()
        if sample.name == "relai_http_requests_total"
        and sample.labels["route"] == route
        and sample.labels["status"].startswith("5")
    )


def _scope(method: str, path: str) -> Scope:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"t")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }


async def _ignore(_: Message) -> None:
    return None


async def test_a_client_that_leaves_a_stream_counts_as_499_not_5xx() -> None:
    """As a browser closing an SSE stream: ``http.disconnect`` while the body is being sent."""
    sent: list[Message] = []
    enough = asyncio.Event()

    async def send(message: Message) -> None:
        sent.append(message)
        if sum(m["type"] == "http.response.body" for m in sent) >= 3:
            enough.set()

    requests = iter([{"type": "http.request", "body": b"", "more_body": False}])

    async def receive() -> Message:
        for message in requests:
            return message
        await enough.wait()
        return {"type": "http.disconnect"}

    left, errors = _count("GET", "/stream", CLIENT_CLOSED), _server_errors("/stream")
    await asyncio.wait_for(_app()(_scope("GET", "/stream"), receive, send), 5)
    assert sent[0]["status"] == 200
    assert _count("GET", "/stream", CLIENT_CLOSED) == left + 1
    assert _count("GET", "/stream", "200") == 0
    assert _server_errors("/stream") == errors


async def test_a_client_that_leaves_while_its_body_is_read_counts_as_499_not_500() -> None:
    """Starlette raises ``ClientDisconnect`` in the endpoint; without a handler for it the app
    answers 500 to no one: the metrics still count what happened, 499."""
    sequence: list[Message] = [
        {"type": "http.request", "body": b'{"text": "par', "more_body": True},
        {"type": "http.disconnect"},
    ]
    messages = iter(sequence)

    async def receive() -> Message:
        return next(messages)

    left, errors = _count("POST", "/upload", CLIENT_CLOSED), _server_errors("/upload")
    with pytest.raises(ClientDisconnect):
        await _app()(_scope("POST", "/upload"), receive, _ignore)
    assert _count("POST", "/upload", CLIENT_CLOSED) == left + 1
    assert _server_errors("/upload") == errors


async def test_a_send_refused_because_the_client_left_counts_as_499() -> None:
    """ASGI 2.4 servers raise ``OSError`` from ``send`` once the client is gone."""

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(_: Message) -> None:
        raise OSError("the client went away")

    left, errors = _count("GET", "/plain", CLIENT_CLOSED), _server_errors("/plain")
    with pytest.raises(OSError, match="went away"):
        await _app()(_scope("GET", "/plain"), receive, send)
    assert _count("GET", "/plain", CLIENT_CLOSED) == left + 1
    assert _server_errors("/plain") == errors
