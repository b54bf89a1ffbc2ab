"""A local OTLP/HTTP trace receiver for tests: what the processes export, decoded with the
protobuf definitions of ``opentelemetry-proto``."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from tests.integration.api.conftest import free_port

AttributeValue = str | bool | int | float | None


@dataclass(frozen=True)
class CollectedSpan:
    service: str
    name: str
    trace_id: str
    span_id: str
    parent_id: str | None
    links: tuple[tuple[str, str], ...]
    """(trace id, span id) of each linked span."""
    attributes: dict[str, AttributeValue]


@dataclass
class Receiver:
    endpoint: str
    spans: list[CollectedSpan] = field(default_factory=list)

    def of_trace(self, trace_id: str) -> list[CollectedSpan]:
        return [s for s in self.spans if s.trace_id == trace_id]

    async def wait_for(
        self, done: Callable[[list[CollectedSpan]], bool], timeout: float
    ) -> list[CollectedSpan]:
        """Wait until ``done`` holds for the spans received so far; returns them."""
        async with asyncio.timeout(timeout):
            while not done(self.spans):
                await asyncio.sleep(0.05)
        return list(self.spans)


def _value(value: AnyValue) -> AttributeValue:
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "int_value":
        return value.int_value
    if kind == "double_value":
        return value.double_value
    return None


def _attributes(pairs: list[KeyValue]) -> dict[str, AttributeValue]:
    return {kv.key: _value(kv.value) for kv in pairs}


def decode_spans(body: bytes) -> list[CollectedSpan]:
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    found = []
    for resource_spans in request.resource_spans:
        service = str(_attributes(list(resource_spans.resource.attributes)).get("service.name"))
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                links = tuple((link.trace_id.hex(), link.span_id.hex()) for link in span.links)
                found.append(
                    CollectedSpan(
                        service=service,
                        name=span.name,
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_id=span.parent_span_id.hex() or None,
                        links=links,
                        attributes=_attributes(list(span.attributes)),
                    )
                )
    return found


@asynccontextmanager
async def otlp_receiver() -> AsyncIterator[Receiver]:
    """Serve ``POST /v1/traces`` (OTLP/HTTP, protobuf) on a free local port."""
    port = free_port()
    receiver = Receiver(endpoint=f"http://127.0.0.1:{port}")

    async def traces(request: web.Request) -> web.Response:
        body = await request.read()
        if request.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        receiver.spans.extend(decode_spans(body))
        return web.Response(
            body=ExportTraceServiceResponse().SerializeToString(),
            content_type="application/x-protobuf",
        )

    app = web.Application()
    app.router.add_post("/v1/traces", traces)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield receiver
    finally:
        await runner.cleanup()
