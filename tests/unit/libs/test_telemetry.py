"""Tracing off by default, on only by the standard ``OTEL_*`` variables; trace context from
``traceparent`` strings; trace ids on log lines; the ages the per-hop histograms observe."""

import time

import pytest
import structlog
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan

from libs.logs import bind_request
from libs.logs.setup import add_trace_ids
from libs.telemetry import (
    batch_spans,
    current_traceparent,
    link_context,
    quiet,
    since_entry,
    since_epoch,
    span,
)
from libs.telemetry.tracing import exporter_names, setup_tracing, tracing_enabled

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, []),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://jaeger:4318"}, ["otlp"]),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://jaeger:4318/v1/traces"}, ["otlp"]),
        ({"OTEL_TRACES_EXPORTER": "console"}, ["console"]),
        ({"OTEL_TRACES_EXPORTER": "otlp, console"}, ["otlp", "console"]),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x"}, []),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"}, []),
    ],
)
def test_only_the_otel_environment_turns_tracing_on(
    env: dict[str, str], expected: list[str]
) -> None:
    assert exporter_names(env) == expected


def test_without_otel_variables_nothing_is_installed() -> None:
    assert setup_tracing("test", env={}) is False
    assert tracing_enabled() is False
    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
    # Every helper is a pass-through.
    with span("x", traceparent=TRACEPARENT) as s, batch_spans("y", [TRACEPARENT]) as b, quiet():
        assert (s, b) == (None, None)
        assert current_traceparent() is None


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "garbage",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e473z-00f067aa0ba902b7-01",
    ],
)
def test_malformed_traceparents_name_no_context(value: str | None) -> None:
    assert link_context(value) is None


def test_a_traceparent_round_trips_through_the_current_span() -> None:
    remote = link_context(TRACEPARENT)
    assert remote is not None
    assert (remote.trace_id, remote.span_id, remote.is_remote) == (
        0x4BF92F3577B34DA6A3CE929D0E0E4736,
        0x00F067AA0BA902B7,
        True,
    )
    with trace.use_span(NonRecordingSpan(remote)):
        assert current_traceparent() == TRACEPARENT


def test_log_lines_carry_the_current_spans_ids() -> None:
    remote = link_context(TRACEPARENT)
    assert remote is not None
    assert add_trace_ids(None, "info", {"event": "e"}) == {"event": "e"}
    with trace.use_span(NonRecordingSpan(remote)):
        assert add_trace_ids(None, "info", {"event": "e"}) == {
            "event": "e",
            "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
            "span_id": "00f067aa0ba902b7",
        }


def test_request_logs_carry_the_trace_id_of_the_requests_traceparent() -> None:
    with bind_request("r-1", TRACEPARENT):
        bound = structlog.contextvars.get_contextvars()
        assert (bound["request_id"], bound["trace_id"]) == (
            "r-1",
            "4bf92f3577b34da6a3ce929d0e0e4736",
        )
    with bind_request("r-2", "not a traceparent"):
        assert "trace_id" not in structlog.contextvars.get_contextvars()
    assert "request_id" not in structlog.contextvars.get_contextvars()


def test_a_stream_entrys_age_is_read_from_its_id_and_never_negative() -> None:
    now_ms = int(time.time() * 1000)
    assert 2.9 < since_entry(f"{now_ms - 3000}-7".encode()) < 4.0
    assert 2.9 < since_entry(f"{now_ms - 3000}-0") < 4.0
    assert since_entry(f"{now_ms + 60_000}-0") == 0.0  # a clock ahead of this one
    assert since_epoch(time.time() + 60) == 0.0
    assert 1.9 < since_epoch(time.time() - 2) < 3.0
