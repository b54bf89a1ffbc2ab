"""Per-process tracer setup, driven by the standard OpenTelemetry environment variables only.

Tracing is on when ``OTEL_TRACES_EXPORTER`` names an exporter (``otlp`` or ``console``) or an
OTLP endpoint is set (``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``),
and ``OTEL_SDK_DISABLED`` is not true. Otherwise nothing is installed: the API's no-op tracer
stays in place, the database and Redis clients are not wrapped, and every span helper returns
at once. Everything else (sampler, batch sizes, headers, resource attributes) is read by the SDK
from its own ``OTEL_*`` variables.

The SDK, the exporter and the instrumentations are imported only when tracing is on: together
they take longer to import than the rest of a process, and a process without tracing never
uses them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from opentelemetry import trace

from libs.logs import get_logger

if TYPE_CHECKING:
    from fastapi import FastAPI
    from opentelemetry.sdk.trace.export import SpanExporter

log = get_logger(__name__)

_state = {"enabled": False}

UNTRACED_URLS = "/health,/metrics"
"""Probes and scrapes: a span each would drown the requests' traces."""


def tracing_enabled() -> bool:
    """Whether this process records spans (``setup_tracing`` found an exporter configured)."""
    return _state["enabled"]


def exporter_names(env: Mapping[str, str]) -> list[str]:
    """The span exporters the environment asks for; none means tracing is off."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    names = [n.strip().lower() for n in env.get("OTEL_TRACES_EXPORTER", "").split(",")]
    names = [n for n in names if n]
    if names:
        return [n for n in names if n != "none"]
    if env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return ["otlp"]
    return []


def _exporter(name: str, env: Mapping[str, str]) -> SpanExporter | None:
    if name == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        protocol = env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get(
            "OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"
        )
        if protocol != "http/protobuf":
            log.warning("telemetry.protocol_unsupported", protocol=protocol, using="http/protobuf")
        return OTLPSpanExporter()
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    log.warning("telemetry.exporter_unknown", exporter=name)
    return None


def setup_tracing(service: str, env: Mapping[str, str] | None = None) -> bool:
    """Install the tracer provider of this process as ``service`` (unless ``OTEL_SERVICE_NAME``
    says otherwise) and instrument asyncpg and Redis; returns whether tracing is on.

    Call it once per process, before the clients are made. A second call changes nothing.
    """
    if _state["enabled"]:
        return True
    env = os.environ if env is None else env
    exporters = [e for n in exporter_names(env) if (e := _exporter(n, env)) is not None]
    if not exporters:
        return False
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    attributes = {} if env.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: service}
    provider = TracerProvider(resource=Resource.create(attributes))
    for exporter in exporters:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    AsyncPGInstrumentor().instrument()  # type: ignore[no-untyped-call]
    RedisInstrumentor().instrument()
    _state["enabled"] = True
    log.info("telemetry.tracing", service=service, exporters=[type(e).__name__ for e in exporters])
    return True


def instrument_app(app: FastAPI) -> None:
    """Server spans for ``app``'s HTTP and WebSocket routes (joining an incoming ``traceparent``),
    named by route template; not for probes and scrapes, nor for each ASGI message sent."""
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(
        app, excluded_urls=UNTRACED_URLS, exclude_spans=["receive", "send"]
    )
