import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import structlog
from opentelemetry import trace

from libs.security.masking import mask_event


def configure_logging(*, service: str, level: str = "INFO", json: bool = True) -> None:
    """Route structlog and the stdlib (uvicorn, asyncpg...) through one JSON renderer, with
    secrets (API keys, bearer tokens, sensitive fields) masked on every line."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        add_trace_ids,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        mask_event,
    ]
    renderer: Any = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    structlog.configure(
        # Filter first, so that a disabled level costs a method call and nothing more.
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    structlog.contextvars.bind_contextvars(service=service)


def add_trace_ids(_logger: Any, _method: str, event: dict[str, Any]) -> dict[str, Any]:
    """``trace_id`` and ``span_id`` of the span current where the line is logged, if any."""
    ctx = trace.get_current_span().get_span_context()
    if ctx.is_valid:
        event["trace_id"] = f"{ctx.trace_id:032x}"
        event["span_id"] = f"{ctx.span_id:016x}"
    return event


def get_logger(name: str) -> Any:
    return structlog.stdlib.get_logger(name)


@contextmanager
def bind_request(request_id: object, traceparent: str | None = None) -> Iterator[None]:
    """Every line logged inside carries ``request_id`` and, from the request's W3C
    ``traceparent``, its ``trace_id`` (even with tracing off; a current span's ids win)."""
    fields = {"request_id": str(request_id)}
    parts = traceparent.split("-") if traceparent else ()
    if len(parts) == 4 and len(parts[1]) == 32:
        fields["trace_id"] = parts[1]
    with structlog.contextvars.bound_contextvars(**fields):
        yield
