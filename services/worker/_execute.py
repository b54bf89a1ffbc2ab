"""One job, from a stream entry to its results: decode, report started, run, report the outcome."""

import asyncio
import dataclasses
import math
import time
from collections.abc import Callable, Mapping
from typing import Any, Literal

from libs.blobs import BlobStore
from libs.contracts import ResultMessage, TaskMessage
from libs.contracts.models import Route
from libs.contracts.streams import MESSAGE_FIELD
from libs.contracts.tiers import DEFAULT_TIER, Tier
from libs.logs import bind_request, get_logger
from libs.security.params import credential_problem
from libs.streams import decode, encode
from libs.telemetry import current_traceparent, job_span, since_entry, span, tracing_enabled
from services.worker._cancel import Cancellations
from services.worker._chunks import ChunkPublisher
from services.worker._entries import Fields, describe_invalid, salvage, salvage_step
from services.worker._files import FileResults, has_files
from services.worker._job_telemetry import handler_attrs, job_attrs, record_usage, usage_counts
from services.worker._limits import TIER_LIMITS, Lease, Limiter, Taken, limits_of
from services.worker._writer import Encoded, ResultWriter
from services.worker.job import CallRouter, Handler, HandlerError, Job, JobContext
from services.worker.metrics import (
    HOP_PICKUP,
    JOB_DURATION,
    JOB_RETRIES,
    JOBS,
    JOBS_IN_FLIGHT,
    UNKNOWN_HANDLER,
    zero_for,
)
from services.worker.providers.routing import Chain, Routes
from services.worker.registry import HandlerRegistry, UnknownHandlerError

log = get_logger(__name__)

Kind = Literal["started", "succeeded", "failed"]

HandlerParams = Callable[[str, Mapping[str, Any]], Mapping[str, Any]]
"""The params a job runs with, from its handler id and the params its task carries (the central
config ``worker`` lays its own over them, and its integrations' URLs and keys)."""

DeploymentParams = Callable[[Mapping[str, Any], Mapping[str, Any], str], Mapping[str, Any] | None]
"""The params of a job's calls to a deployment, from the job's params, the params its task
carries and the deployment's integration: the integration's URL, key and headers laid over the
job's; None when the worker's config has no such integration."""


class _Cancelled(Exception):
    """The request was cancelled: the job does not start, or its handler call is abandoned."""


class JobExecutor:
    def __init__(
        self,
        registry: HandlerRegistry,
        writer: ResultWriter,
        *,
        consumer: str,
        timeout_s: float,
        handler_params: HandlerParams | None = None,
        chunks: ChunkPublisher | None = None,
        cancels: Cancellations | None = None,
        limiter: Limiter | None = None,
        blobs: BlobStore | None = None,
        max_result_bytes: int = 50 * 1024 * 1024,
        fair: bool = False,
        routes: Routes | None = None,
        deployment_params: DeploymentParams | None = None,
    ) -> None:
        """``blobs`` holds the jobs' input files and receives their file results; ``fair``
        parks every job (those without an integration in the queue of the tier they ask for,
        ``TIER_LIMITS``); ``routes`` sends the calls of jobs of a model to its deployments,
        each called with its ``deployment_params``."""
        self._registry = registry
        zero_for(registry)
        self._read = blobs.get if blobs is not None else None
        self._files = FileResults(blobs, max_bytes=max_result_bytes)
        self._handler_params = handler_params
        self._writer = writer
        self._consumer = consumer
        self._timeout_s = timeout_s
        self._chunks = chunks
        self._cancels = cancels
        self._limiter = limiter
        self._fair = fair
        self._routes = routes
        self._deployment_params = deployment_params

    async def run(self, entry_id: bytes, fields: Fields | None) -> None:
        """Run the entry's job; its final result is buffered together with the entry's ack.
        A job under an integration's limits is parked instead (see ``_limits``)."""
        HOP_PICKUP.observe(since_entry(entry_id))
        with JOBS_IN_FLIGHT.track_inprogress():
            await self._run(entry_id, fields, None)

    async def run_leased(self, taken: Taken) -> None:
        """Run a parked job taken under its lease; its final result is buffered together with
        the lease's release."""
        with JOBS_IN_FLIGHT.track_inprogress():
            await self._run(None, {MESSAGE_FIELD: taken.task}, taken.lease, taken.message)

    async def _run(
        self,
        entry_id: bytes | None,
        fields: Fields | None,
        lease: Lease | None,
        decoded: TaskMessage | None = None,
    ) -> None:
        """``decoded``: the task already decoded from ``fields`` (a parked job's)."""
        try:
            if fields is None:
                raise KeyError(entry_id)
            task = decoded if decoded is not None else decode(TaskMessage, fields)
        except (KeyError, ValueError) as exc:
            self._reject(entry_id, fields, describe_invalid(exc), lease)
            JOBS.labels(UNKNOWN_HANDLER, "failed").inc()
            return
        handler = task.handler if task.handler in self._registry else UNKNOWN_HANDLER
        if task.attempt > 1:
            JOB_RETRIES.labels(handler).inc()
        attributes = job_attrs(task) if tracing_enabled() else None
        with (
            job_span("relai.worker.job", traceparent=task.traceparent, attributes=attributes),
            bind_request(task.request_id, task.traceparent),
        ):
            if (
                lease is None
                and entry_id is not None
                and await self._parked(entry_id, task, fields[MESSAGE_FIELD])
            ):
                return
            # Served at its tier only when taken from its tier's queue (fair scheduling).
            tier = DEFAULT_TIER if lease is None else lease.tier
            start = time.perf_counter()
            ctx = JobContext(self._chunks.sink_for(task) if self._chunks else None)
            try:
                results, error = await self._execute(task, ctx, tier)
            except _Cancelled:
                # Acked without a result: the cancellation already ended the request.
                log.info("job.cancelled", handler=task.handler, attempt=task.attempt)
                self._writer.add(None, ack=entry_id, release=lease)
                JOBS.labels(handler, "cancelled").inc()
                return
            usage = usage_counts(ctx)
            deployment, served = ctx.deployment, ctx.served_model
            JOB_DURATION.labels(handler).observe(time.perf_counter() - start)
            message: Encoded | None = None
            if error is None:
                try:
                    message = self._message(
                        task,
                        "succeeded",
                        tier,
                        results=results,
                        usage=usage,
                        deployment=deployment,
                        model=served,
                    )
                except ValueError as exc:
                    error = f"results are not JSON-serializable: {exc}"
            if message is None:
                log.warning("job.failed", handler=task.handler, attempt=task.attempt, error=error)
                message = self._message(
                    task,
                    "failed",
                    tier,
                    error=error,
                    usage=usage,
                    deployment=deployment,
                    model=served,
                )
            self._writer.add(message, ack=entry_id, release=lease)
            JOBS.labels(handler, "succeeded" if error is None else "failed").inc()

    async def _parked(self, entry_id: bytes, task: TaskMessage, raw: bytes) -> bool:
        """Park the task (``raw``: its JSON as the relay published it, which it decodes to) if
        its integration has limits, or under fair scheduling; a task whose limits are invalid
        fails."""
        if self._limiter is None:
            return False
        try:
            limits = limits_of(self._job(task).params)
        except HandlerError as exc:
            failed = self._message(task, "failed", DEFAULT_TIER, error=str(exc))
            self._writer.add(failed, ack=entry_id)
            JOBS.labels(
                task.handler if task.handler in self._registry else UNKNOWN_HANDLER, "failed"
            ).inc()
            return True
        if limits is None:
            if not self._fair:
                return False
            limits = TIER_LIMITS[task.tier]
        await self._limiter.park(entry_id, task, raw, limits)
        log.debug("job.parked", integration=limits.integration)
        return True

    async def _execute(
        self, task: TaskMessage, ctx: JobContext, tier: Tier
    ) -> tuple[list[object] | None, str | None]:
        try:
            handler = self._registry.get(task.handler)
        except UnknownHandlerError as exc:
            return None, str(exc)
        if self._cancels is None:
            return await self._call(task, handler, ctx, tier)
        with self._cancels.watch(task.request_id) as watch:
            try:
                if await self._cancels.is_marked(task.request_id):
                    raise _Cancelled
                return await self._call(task, handler, ctx, tier)
            except asyncio.CancelledError:
                # Cancelled for the request (see ``Cancellations.cancel``), unless the worker is
                # also stopping: then the job is left to the drain like any other.
                current = asyncio.current_task()
                if not watch.cancelled or (current is not None and current.uncancel() > 0):
                    raise
                raise _Cancelled from None

    async def _call(
        self, task: TaskMessage, handler: Handler, ctx: JobContext, tier: Tier
    ) -> tuple[list[object] | None, str | None]:
        self._writer.add(self._message(task, "started", tier))
        log.debug("job.started", handler=task.handler, attempt=task.attempt)
        timeout_s = self._timeout_s
        try:
            job = self._job(task)
            timeout_s = job_timeout(job.params, self._timeout_s)
            if task.route is not None:
                ctx.router = self._router(task, job, timeout_s)
            async with asyncio.timeout(timeout_s) as deadline:
                attributes = handler_attrs(task) if tracing_enabled() else None
                with span("relai.handler", attributes=attributes) as current:
                    try:
                        results = await handler.execute(job, ctx)
                    finally:
                        record_usage(task, ctx, current)
        except HandlerError as exc:
            return None, str(exc) or type(exc).__name__
        except TimeoutError as exc:
            if deadline.expired():
                return None, f"TimeoutError: job exceeded {timeout_s:g}s"
            return None, f"TimeoutError: {exc}"
        except Exception as exc:
            log.exception("job.error", handler=task.handler)
            return None, f"{type(exc).__name__}: {exc}"
        if not isinstance(results, list):
            return None, f"handler returned {type(results).__name__}, not a list"
        if has_files(results):
            try:
                results = await self._files.store(task, results)
            except HandlerError as exc:
                return None, str(exc)
            except Exception as exc:
                log.exception("job.files_error", handler=task.handler)
                return None, f"{type(exc).__name__}: {exc}"
        return results, None

    def _job(self, task: TaskMessage) -> Job:
        """The task's job, refused (``HandlerError``) when its params carry a credential: keys
        come from the operator's integrations only, whatever a task says."""
        job = Job.from_task(task, self._read)
        problem = credential_problem(job.params)
        if problem:
            raise HandlerError(f"invalid params: {problem}")
        if self._handler_params is None:
            return job
        return dataclasses.replace(job, params=self._handler_params(task.handler, job.params))

    def _router(self, task: TaskMessage, job: Job, timeout_s: float) -> CallRouter:
        """Where the calls of a job of a model go: its deployments this worker can call, then
        its fallbacks' (those of which this worker can call some)."""
        route = task.route
        assert route is not None
        routes = self._routes
        if routes is None:
            raise HandlerError(f"model {route.model}: this worker does not route jobs of models")
        routers = []
        for each in (route, *route.fallbacks):
            params = self._params_of(each, task, job)
            if params:
                routers.append(routes.router(each, params, timeout_s=timeout_s))
        if not routers:
            names = ", ".join(d.integration for d in route.deployments)
            raise HandlerError(
                f"model {route.model}: none of its deployments ({names}) is an integration "
                "this worker's config has"
            )
        return Chain(routers)

    def _params_of(self, route: Route, task: TaskMessage, job: Job) -> dict[str, Mapping[str, Any]]:
        """The params of each deployment of ``route`` this worker's config has."""
        params: dict[str, Mapping[str, Any]] = {}
        for d in route.deployments:
            found = (
                self._deployment_params(job.params, task.params, d.integration)
                if self._deployment_params is not None
                else None
            )
            if found is not None:
                params[d.integration] = {**found, "model": d.model or route.provider_model}
        return params

    def _message(
        self,
        task: TaskMessage,
        kind: Kind,
        tier: Tier,
        *,
        results: list[object] | None = None,
        error: str | None = None,
        usage: dict[str, int] | None = None,
        deployment: str | None = None,
        model: str | None = None,
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
                tier=tier,
                deployment=deployment,
                model=model,
            )
        )

    def _reject(
        self, entry_id: bytes | None, fields: Fields | None, reason: str, lease: Lease | None
    ) -> None:
        """Ack an entry that is not a valid task, reporting it failed if its request is known."""
        known = salvage(fields)
        where = entry_id.decode() if entry_id else f"lease {lease.id if lease else '?'}"
        if known is None:
            log.error("task.malformed", entry_id=where, error=reason)
            self._writer.add(None, ack=entry_id, release=lease)
            return
        request_id, attempt, traceparent = known
        with bind_request(request_id):
            log.error("task.malformed", entry_id=where, error=reason)
            message = ResultMessage(
                request_id=request_id,
                traceparent=traceparent,
                attempt=attempt,
                kind="failed",
                error=f"malformed task: {reason}",
                worker=self._consumer,
                step=salvage_step(fields),
                tier=DEFAULT_TIER if lease is None else lease.tier,
            )
            self._writer.add(encode(message), ack=entry_id, release=lease)


def job_timeout(params: Mapping[str, Any], limit_s: float) -> float:
    """The job's timeout: its params' ``job_timeout_s`` (the offer's over the handler's, as
    recon reads it to judge the request's deadline), never past the worker's own ``limit_s``."""
    value = params.get("job_timeout_s")
    if value is None:
        return limit_s
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
        raise HandlerError("invalid params: job_timeout_s must be a number > 0")
    return min(float(value), limit_s)
