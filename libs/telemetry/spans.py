"""Spans that continue a request's trace in whichever process handles it.

Every message of a request carries its W3C ``traceparent``. A process that handles one request
makes a *child* span of it (``span``, ``job_span``). A process that handles many requests in one
batch (the relay, the results consumer) makes one batch span, which holds the shared database
and Redis work, and in each request's trace a child span that *links* to it (``batch_spans``):
so every request still has one trace from submit to its last WebSocket push.

With tracing off every helper returns at once without touching OpenTelemetry's context.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY
from opentelemetry.trace import Link, NonRecordingSpan, Span, SpanContext, SpanKind, TraceFlags
from opentelemetry.util.types import AttributeValue

from libs.telemetry.tracing import tracing_enabled

Attributes = Mapping[str, AttributeValue]

_TRACER_NAME = "relai"
_SUPPRESS_INSTRUMENTATION_KEY_PLAIN = "suppress_instrumentation"
"""The string key ``suppress_instrumentation`` also sets (some instrumentations read it)."""


def _instrumentation(on: bool) -> otel_context.Context:
    """The current context with client instrumentation (asyncpg, Redis, ...) on or off: the keys
    ``opentelemetry.instrumentation.utils.suppress_instrumentation`` sets, without importing it."""
    ctx = otel_context.set_value(_SUPPRESS_INSTRUMENTATION_KEY, not on)
    return otel_context.set_value(_SUPPRESS_INSTRUMENTATION_KEY_PLAIN, not on, ctx)


def _tracer() -> trace.Tracer:
    return trace.get_tracer(_TRACER_NAME)


def link_context(traceparent: str | None) -> SpanContext | None:
    """The remote span context a ``traceparent`` names, or None if it is absent or malformed."""
    if not traceparent:
        return None
    parts = traceparent.split("-")
    if len(parts) != 4 or len(parts[1]) != 32 or len(parts[2]) != 16:
        return None
    try:
        trace_id, span_id, flags = int(parts[1], 16), int(parts[2], 16), int(parts[3], 16)
    except ValueError:
        return None
    if not trace_id or not span_id:
        return None
    return SpanContext(trace_id, span_id, is_remote=True, trace_flags=TraceFlags(flags & 0x01))


def _parent(traceparent: str | None) -> otel_context.Context | None:
    remote = link_context(traceparent)
    if remote is None:
        return None
    return trace.set_span_in_context(NonRecordingSpan(remote))


def current_traceparent() -> str | None:
    """The ``traceparent`` of the span current here, or None when there is none (tracing off)."""
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"


_NO_SPAN: AbstractContextManager[None] = nullcontext()
"""What every helper returns with tracing off: entering and leaving it costs next to nothing."""


def span(
    name: str,
    *,
    traceparent: str | None = None,
    kind: SpanKind = SpanKind.INTERNAL,
    attributes: Attributes | None = None,
) -> AbstractContextManager[Span | None]:
    """A current span named ``name``: a child of ``traceparent`` when given, else of the span
    current here. Yields None when tracing is off."""
    if not tracing_enabled():
        return _NO_SPAN
    return _span(name, traceparent, kind, attributes)


@contextmanager
def _span(
    name: str, traceparent: str | None, kind: SpanKind, attributes: Attributes | None
) -> Iterator[Span]:
    parent = _parent(traceparent) if traceparent is not None else None
    with _tracer().start_as_current_span(
        name, context=parent, kind=kind, attributes=attributes
    ) as current:
        yield current


def job_span(
    name: str, *, traceparent: str | None, attributes: Attributes | None = None
) -> AbstractContextManager[Span | None]:
    """A consumer's span for one message: a child of the message's ``traceparent``, with the
    client instrumentation (asyncpg, Redis) turned back on inside even if the loop that read the
    message had it off (see ``quiet``)."""
    if not tracing_enabled():
        return _NO_SPAN
    return _job_span(name, traceparent, attributes)


@contextmanager
def _job_span(
    name: str, traceparent: str | None, attributes: Attributes | None
) -> Iterator[Span | None]:
    token = otel_context.attach(_instrumentation(on=True))
    try:
        with span(
            name, traceparent=traceparent, kind=SpanKind.CONSUMER, attributes=attributes
        ) as current:
            yield current
    finally:
        otel_context.detach(token)


def batch_spans(
    name: str,
    traceparents: Iterable[str | None],
    *,
    attributes: Attributes | None = None,
) -> AbstractContextManager[Span | None]:
    """One batch span (current inside, instrumentation on) for work serving many requests, plus,
    in each request's trace, a child span ``name`` that links to it. All end together."""
    if not tracing_enabled():
        return _NO_SPAN
    return _batch_spans(name, traceparents, attributes)


@contextmanager
def _batch_spans(
    name: str, traceparents: Iterable[str | None], attributes: Attributes | None
) -> Iterator[Span]:
    tracer = _tracer()
    contexts = [c for c in map(link_context, dict.fromkeys(traceparents)) if c is not None]
    token = otel_context.attach(_instrumentation(on=True))
    try:
        with (
            tracer.start_as_current_span(
                f"{name} batch",
                context=otel_context.get_current(),
                links=[Link(c) for c in contexts[:128]],
                attributes={**(attributes or {}), "relai.batch.size": len(contexts)},
            ) as batch,
            ExitStack() as per_request,
        ):
            link = [Link(batch.get_span_context())]
            for remote in contexts:
                child = tracer.start_span(
                    name,
                    context=trace.set_span_in_context(NonRecordingSpan(remote)),
                    links=link,
                    attributes=attributes,
                )
                per_request.callback(child.end)
            yield batch
    finally:
        otel_context.detach(token)


def quiet() -> AbstractContextManager[None]:
    """No client instrumentation spans inside: for polling loops (blocking reads, empty polls)
    that would otherwise make a trace of their own every second."""
    if not tracing_enabled():
        return _NO_SPAN
    return _quiet()


@contextmanager
def _quiet() -> Iterator[None]:
    token = otel_context.attach(_instrumentation(on=False))
    try:
        yield
    finally:
        otel_context.detach(token)
