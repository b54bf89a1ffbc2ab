"""One job, from a stream entry to its results: decode, report started, run, report the outcome."""

import asyncio
import dataclasses
import time
from collections.abc import Callable, Mapping
from typing import Any, Literal

from opentelemetry.trace import Span

from libs.contracts import ResultMessage, TaskMessage
from libs.logs import bind_request, get_logger
from libs.streams import decode, encode
from libs.telemetry import current_traceparent, job_span, span, tracing_enabled
from services.worker._entries import Fields, describe_invalid, salvage, salvage_step
from services.worker._writer import Encoded, ResultWriter
from services.worker.job import HandlerError, Job, JobContext
from services.worker.metrics import (
    JOB_DURATION,
    JOB_RETRIES,
    JOBS,
    JOBS_IN_FLIGHT,
    PROVIDER_TOKENS,
    UNKNOWN_HANDLER,
)
from services.worker.registry import HandlerRegistry, UnknownHandlerError

log = get_logger(__name__)

Kind = Literal["started", "succeeded", "failed"]

HandlerParams = Callable[[str], Mapping[str, Any]]
"""Params laid over a job's own, by handler id (the central config ``worker``)."""


class JobExecutor:
    def __init__(
        self,
        registry: HandlerRegistry,
        writer: ResultWriter,
        *,
        consumer: str,
        timeout_s: float,
        handler_params: HandlerParams | None = None,
    ) -> None:
        self._registry = registry
        self._handler_params = handler_params
        self._writer = writer
        self._consumer = consumer
        self._timeout_s = timeout_s

    async def run(self, entry_id: bytes, fields: Fields | None) -> None:
        """Run the entry's job; its final result is buffered together with the entry's ack."""
        with JOBS_IN_FLIGHT.track_inprogress():
            await self._run(entry_id, fields)

    async def _run(self, entry_id: bytes, fields: Fields | None) -> None:
        try:
            if fields is None:
                raise KeyError(entry_id)
            task = decode(TaskMessage, fields)
        except (KeyError, ValueError) as exc:
            self._reject(entry_id, fields, describe_invalid(exc))
            JOBS.labels(UNKNOWN_HANDLER, "failed").inc()
            return
        handler = task.handler if task.handler in self._registry else UNKNOWN_HANDLER
        if task.attempt > 1:
            JOB_RETRIES.labels(handler).inc()
        attributes = _job_attrs(task) if tracing_enabled() else None
        with (
            job_span("relai.worker.job", traceparent=task.traceparent, attributes=attributes),
            bind_request(task.request_id, task.traceparent),
        ):
            start = time.perf_counter()
            ctx = JobContext()
            results, error = await self._execute(task, ctx)
            # Counts only: a handler's odd usage value must not cost the job its result.
            usage = {k: v for k, v in ctx.usage.items() if type(v) is int} or None
            JOB_DURATION.labels(handler).observe(time.perf_counter() - start)
            message: Encoded | None = None
            if error is None:
                try:
                    message = self._message(task, "succeeded", results=results, usage=usage)
                except ValueError as exc:
                    error = f"results are not JSON-serializable: {exc}"
            if message is None:
                log.warning("job.failed", handler=task.handler, attempt=task.attempt, error=error)
                message = self._message(task, "failed", error=error, usage=usage)
            self._writer.add(message, ack=entry_id)
            JOBS.labels(handler, "succeeded" if error is None else "failed").inc()

    async def _execute(
        self, task: TaskMessage, ctx: JobContext
    ) -> tuple[list[object] | None, str | None]:
        try:
            handler = self._registry.get(task.handler)
        except UnknownHandlerError as exc:
            return None, str(exc)
        self._writer.add(self._message(task, "started"))
        log.debug("job.started", handler=task.handler, attempt=task.attempt)
        try:
            async with asyncio.timeout(self._timeout_s) as deadline:
                attributes = _handler_attrs(task) if tracing_enabled() else None
                with span("relai.handler", attributes=attributes) as current:
                    try:
                        results = await handler.execute(self._job(task), ctx)
                    finally:
                        _record_usage(task, ctx, current)
        except HandlerError as exc:
            return None, str(exc) or type(exc).__name__
        except TimeoutError as exc:
            if deadline.expired():
                return None, f"TimeoutError: job exceeded {self._timeout_s:g}s"
            return None, f"TimeoutError: {exc}"
        except Exception as exc:
            log.exception("job.error", handler=task.handler)
            return None, f"{type(exc).__name__}: {exc}"
        if not isinstance(results, list):
            return None, f"handler returned {type(results).__name__}, not a list"
        return results, None

    def _job(self, task: TaskMessage) -> Job:
        job = Job.from_task(task)
        overlay = self._handler_params(task.handler) if self._handler_params else None
        return dataclasses.replace(job, params={**job.params, **overlay}) if overlay else job

    def _message(
        self,
        task: TaskMessage,
        kind: Kind,
        *,
        results: list[object] | None = None,
        error: str | None = None,
        usage: dict[str, int] | None = None,
    ) -> Encoded:
        return encode(
            ResultMessage(
                request_id=task.request_id,
                # Inside the job's span (tracing on), results persist as its children.
                traceparent=current_traceparent() or task.traceparent,
                attempt=task.attempt,
                kind=kind,
                results=results,
                error=error,
                worker=self._consumer,
                usage=usage,
                step=task.step,
            )
        )

    def _reject(self, entry_id: bytes, fields: Fields | None, reason: str) -> None:
        """Ack an entry that is not a valid task, reporting it failed if its request is known."""
        known = salvage(fields)
        if known is None:
            log.error("task.malformed", entry_id=entry_id.decode(), error=reason)
            self._writer.add(None, ack=entry_id)
            return
        request_id, attempt, traceparent = known
        with bind_request(request_id):
            log.error("task.malformed", entry_id=entry_id.decode(), error=reason)
            message = ResultMessage(
                request_id=request_id,
                traceparent=traceparent,
                attempt=attempt,
                kind="failed",
                error=f"malformed task: {reason}",
                worker=self._consumer,
                step=salvage_step(fields),
            )
            self._writer.add(encode(message), ack=entry_id)


def _job_attrs(task: TaskMessage) -> dict[str, str | int]:
    return {
        "relai.request_id": str(task.request_id),
        "relai.handler": task.handler,
        "relai.attempt": task.attempt,
    }


def _handler_attrs(task: TaskMessage) -> dict[str, str]:
    """The handler, its provider (the handler id's module) and model (its ``model`` param)."""
    return {
        "relai.handler": task.handler,
        "relai.provider": task.handler.partition(".")[0],
        "relai.model": str(task.params.get("model", "")),
    }


def _record_usage(task: TaskMessage, ctx: JobContext, current: Span | None) -> None:
    """The usage the handler reported: counted by handler and model, and set on its span."""
    if not ctx.usage:
        return
    model = str(task.params.get("model", ""))
    for kind, count in ctx.usage.items():
        if type(count) is not int or count < 0:
            continue  # only counts: an odd value is dropped, as from the result message
        PROVIDER_TOKENS.labels(task.handler, model, kind).inc(count)
        if current is not None:
            current.set_attribute(f"relai.usage.{kind}", count)
