"""What a job tells observers: span attributes and the provider usage it reported."""

from opentelemetry.trace import Span

from libs.contracts import TaskMessage
from services.worker.job import JobContext
from services.worker.metrics import PROVIDER_TOKENS


def job_attrs(task: TaskMessage) -> dict[str, str | int]:
    return {
        "relai.request_id": str(task.request_id),
        "relai.handler": task.handler,
        "relai.attempt": task.attempt,
    }


def handler_attrs(task: TaskMessage) -> dict[str, str]:
    """The handler, its provider (the handler id's module) and model (its ``model`` param)."""
    return {
        "relai.handler": task.handler,
        "relai.provider": task.handler.partition(".")[0],
        "relai.model": str(task.params.get("model", "")),
    }


def usage_counts(ctx: JobContext) -> dict[str, int] | None:
    """Counts only: a handler's odd usage value must not cost the job its result."""
    return {k: v for k, v in ctx.usage.items() if type(v) is int and v >= 0} or None


def record_usage(task: TaskMessage, ctx: JobContext, current: Span | None) -> None:
    """The usage the handler reported: counted by handler and model, and set on its span."""
    usage = usage_counts(ctx)
    if not usage:
        return
    model = str(task.params.get("model", ""))
    for kind, count in usage.items():
        PROVIDER_TOKENS.labels(task.handler, model, kind).inc(count)
        if current is not None:
            current.set_attribute(f"relai.usage.{kind}", count)
