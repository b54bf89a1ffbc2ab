"""The HTTP metrics middleware: route templates as labels, websockets passed through."""

import httpx
from fastapi import FastAPI
from prometheus_client import REGISTRY
from prometheus_client.samples import Sample
from starlette.types import Message, Receive, Scope, Send

from services.api.metrics import UNMATCHED_ROUTE, MetricsMiddleware


def _app() -> FastAPI:
    app = FastAPI()

    @app.get("/things/{thing_id}")
    async def thing(thing_id: str) -> dict[str, str]:
        return {"id": thing_id}

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("boom")

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
