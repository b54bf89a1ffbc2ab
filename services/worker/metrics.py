"""The worker's Prometheus metrics (served by ``libs.telemetry.serving_metrics``).

Metrics live in ``prometheus_client``'s process-wide default registry: each worker process serves
its own, on its own port (``RELAI_WORKER_METRICS_PORT``). Aggregating several processes into one
registry (``prometheus_client`` multiprocess mode) is out of scope for now.

Labels stay bounded: a handler id comes from the registry (an unknown one is ``unknown``), never a
request id.
"""

from collections.abc import Iterable

from prometheus_client import Counter, Gauge, Histogram

from libs.telemetry import hop

JOBS = Counter(
    "relai_jobs_total",
    "Jobs finished, by handler and outcome (succeeded, failed, cancelled).",
    ["handler", "outcome"],
)
JOB_DURATION = Histogram(
    "relai_job_duration_seconds",
    "Time a handler took to run a job, by handler.",
    ["handler"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0),
)
JOB_RETRIES = Counter(
    "relai_job_retries_total",
    "Jobs run again for a request already tried (attempt > 1, after a re-drive), by handler.",
    ["handler"],
)
TASKS_RECLAIMED = Counter(
    "relai_tasks_reclaimed_total",
    "Task entries taken over from a consumer presumed dead (redelivered), by this worker.",
)
PROVIDER_TOKENS = Counter(
    "relai_provider_tokens_total",
    "Usage reported by handlers (tokens in and out...), by handler, model and kind.",
    ["handler", "model", "kind"],
)
JOBS_IN_FLIGHT = Gauge("relai_jobs_in_flight", "Jobs running now in this process.")
RETRIES = Counter(
    "relai_provider_retries_total",
    "Provider calls retried after a transient error (timeout, 429, 5xx, connection), by handler.",
    ["handler"],
)
RESULT_FILE_BYTES = Counter(
    "relai_result_file_bytes_total",
    "Bytes of file results stored by handlers, by handler and top-level media type (image, "
    "audio, video, application, text; anything else is other).",
    ["handler", "media"],
)
DEAD_LETTERS = Counter(
    "relai_dead_letters_total",
    "Tasks moved to the dead-letters stream after too many deliveries (their requests failed).",
)

HOP_PICKUP = hop("pickup")
"""A task's wait on ``relai:tasks``, from its publication to a worker taking it."""
HOP_WRITE = hop("write")
"""A job's end to its result written on ``relai:results`` (the writer's batch)."""

UNKNOWN_HANDLER = "unknown"
"""The handler label of a task naming no registered handler, or no readable handler at all."""


def zero_for(handlers: Iterable[str]) -> None:
    """The per-handler counters of rare events (retries) at 0 for every handler this worker
    can run: a query over them sees 0 from the first scrape, not an absent series."""
    for handler in handlers:
        JOB_RETRIES.labels(handler)
        RETRIES.labels(handler)


DEPLOYMENT_CALLS = Counter(
    "relai_deployment_calls_total",
    "Provider calls of jobs of a model, by model, deployment and outcome (ok; error: a 5xx or an "
    "error in the answer; rate_limited: a 429; timeout: no answer in time; connection: refused "
    "or dropped; rejected: a 4xx or a malformed answer, the request's fault).",
    ["model", "deployment", "outcome"],
)
DEPLOYMENT_CALL_SECONDS = Histogram(
    "relai_deployment_call_seconds",
    "Time one provider call of a job of a model took, by model and deployment.",
    ["model", "deployment"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0),
)
DEPLOYMENT_FAILOVERS = Counter(
    "relai_deployment_failovers_total",
    "Calls of jobs of a model sent again, to another deployment or the same, after one that "
    "did not answer, by model.",
    ["model"],
)
DEPLOYMENT_FALLBACKS = Counter(
    "relai_model_fallbacks_total",
    "Jobs of a model sent to its next fallback model after every call of this one failed "
    "without an answer, by the model that failed.",
    ["model"],
)
