"""Tracing for every Relai process: OpenTelemetry, exported only when the ``OTEL_*`` environment
asks for it, and spans that continue the request's trace from the ``traceparent`` its messages
carry; the Prometheus metrics server every process runs on an operator port; and the time each
request spends in each hop of its path."""

from libs.telemetry.hops import HOP_SECONDS, hop, since_entry, since_epoch
from libs.telemetry.metrics_server import (
    bearer_matches,
    metrics_registry,
    serving_metrics,
    start_metrics_server,
)
from libs.telemetry.spans import (
    batch_spans,
    current_traceparent,
    job_span,
    link_context,
    quiet,
    span,
)
from libs.telemetry.tracing import instrument_app, setup_tracing, tracing_enabled

__all__ = [
    "HOP_SECONDS",
    "batch_spans",
    "bearer_matches",
    "current_traceparent",
    "instrument_app",
    "job_span",
    "hop",
    "link_context",
    "metrics_registry",
    "quiet",
    "serving_metrics",
    "setup_tracing",
    "since_entry",
    "since_epoch",
    "span",
    "start_metrics_server",
    "tracing_enabled",
]
