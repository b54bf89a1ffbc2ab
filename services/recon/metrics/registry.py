"""Recon's metrics, served by ``libs.telemetry.serving_metrics`` on ``RELAI_RECON_METRICS_PORT``.

The figures that describe the whole pipeline (outbox backlog, stream length, lag and pending per
group, unfinished requests, webhook deliveries waiting, top spenders) are sampled here, by one
process, rather than by every API or worker process. Labels stay bounded: stream and group names
are fixed, the spender label holds at most ``RELAI_RECON_TOP_USERS`` user names at a time, and
the webhook figures have no label (never a user or a URL), the files' only their purpose (upload,
input, result) and a collection's only its reason (unreferenced, orphan).
"""

from prometheus_client import Counter, Gauge

OUTBOX_BACKLOG = Gauge("relai_outbox_backlog", "Outbox rows not yet published to Redis.")
OUTBOX_OLDEST_AGE = Gauge(
    "relai_outbox_oldest_age_seconds",
    "Age of the oldest unpublished outbox row (database clock): the relay's lag; 0 when empty.",
)
WEBHOOK_BACKLOG = Gauge(
    "relai_webhook_backlog", "Webhook deliveries pending (not yet delivered nor given up)."
)
WEBHOOK_OLDEST_PENDING_AGE = Gauge(
    "relai_webhook_oldest_pending_age_seconds",
    "How long the oldest pending webhook delivery has waited since it was queued or sent again "
    "(database clock); 0 when none is pending.",
)
# Not relai_webhook_endpoints_disabled: the dispatcher's counter of disablings is that family.
WEBHOOK_ENDPOINTS_DISABLED = Gauge(
    "relai_webhook_disabled_endpoints",
    "Webhook endpoints disabled now (after sustained failure or 410 Gone), not re-enabled.",
)
WEBHOOK_FAILED_LAST_HOUR = Gauge(
    "relai_webhook_deliveries_failed_last_hour",
    "Webhook deliveries given up whose last attempt was within the last hour.",
)
UNFINISHED = Gauge("relai_requests_unfinished", "Requests not yet succeeded or failed.")
UNFINISHED_OLDEST_AGE = Gauge(
    "relai_requests_unfinished_oldest_age_seconds",
    "Age of the oldest unfinished request (database clock); 0 when there is none.",
)
USAGE_CREDITS = Gauge(
    "relai_usage_hour_credits",
    "Credits spent this hour (so far, as aggregated), by handler and integration.",
    ["handler", "integration"],
)
USAGE_TOKENS = Gauge(
    "relai_usage_hour_tokens",
    "Provider tokens used this hour (so far, as aggregated), by handler, integration and kind.",
    ["handler", "integration", "kind"],
)
USAGE_OFFER_CREDITS = Gauge(
    "relai_usage_offer_credits",
    "Credits settled this hour (so far, as aggregated), by offer: the revenue.",
    ["offer"],
)
USAGE_OFFER_COST = Gauge(
    "relai_usage_offer_cost_credits",
    "What this hour's delivered requests (so far, as aggregated) cost the operator, by offer: "
    "their handlers' credits.",
    ["offer"],
)
STREAM_LENGTH = Gauge("relai_stream_length", "Entries in a stream.", ["stream"])
GROUP_PENDING = Gauge(
    "relai_stream_group_pending",
    "Entries delivered to a consumer of the group and not yet acknowledged.",
    ["stream", "group"],
)
GROUP_LAG = Gauge(
    "relai_stream_group_lag",
    "Entries of the stream not yet delivered to the group.",
    ["stream", "group"],
)
GROUP_CONSUMERS = Gauge(
    "relai_stream_group_consumers", "Consumers known to the group.", ["stream", "group"]
)
TOP_SPEND = Gauge(
    "relai_user_spend_top_credits",
    "Credits settled by the top spenders over the recent window (RELAI_RECON_TOP_USERS_WINDOW_S).",
    ["user"],
)
BUDGET = Gauge(
    "relai_integration_budget_credits",
    "Credits an integration may spend per window (its workers' shared budget).",
    ["integration"],
)
BUDGET_SPENT = Gauge(
    "relai_integration_budget_spent_credits",
    "Credits an integration spent in its current window.",
    ["integration"],
)
SAMPLE_OK = Gauge(
    "relai_recon_sample_success",
    "1 if the last sample of a source (postgres, redis) succeeded, else 0.",
    ["source"],
)
REDRIVEN = Counter("relai_recon_redriven_total", "Stuck requests recon sent to a worker again.")
FAILED = Counter(
    "relai_recon_failed_total", "Stuck requests recon failed and refunded after the last attempt."
)
CREDITS_REFUNDED = Counter(
    "relai_recon_credits_refunded_total",
    "Credits recon refunded by failing stuck requests (the API counts the rest).",
)
BLOBS = Gauge(
    "relai_blobs", "Blobs Postgres knows to be stored (or about to be), as of the last collection."
)
BLOB_BYTES = Gauge(
    "relai_blob_bytes", "Bytes of the blobs Postgres knows to be stored, as of the last collection."
)
FILES = Gauge(
    "relai_files",
    "Files (rows that refer to a blob) by purpose: upload, input, result; as of the last "
    "collection.",
    ["purpose"],
)
BLOBS_COLLECTED = Counter(
    "relai_blobs_collected",
    "Blobs recon deleted from the store, by reason: unreferenced (no file referred to it for "
    "RELAI_BLOB_GRACE_S) or orphan (stored without a row for RELAI_BLOB_ORPHAN_AFTER_S).",
    ["reason"],
)
BLOB_BYTES_FREED = Counter(
    "relai_blob_freed_bytes", "Bytes recon freed in the store by collecting blobs.", ["reason"]
)
UPLOADS_EXPIRED = Counter(
    "relai_uploads_expired", "Uploads recon deleted because their expires_at had passed."
)

COLLECTION_REASONS = ("unreferenced", "orphan")
for _reason in COLLECTION_REASONS:  # at 0 from the start: a rate over them sees 0, not nothing
    BLOBS_COLLECTED.labels(_reason)
    BLOB_BYTES_FREED.labels(_reason)

# Per model version and deployment (an integration's name): catalog data, bounded by the
# catalog; the series of a model or deployment no longer enabled are removed.
DEPLOYMENT_IN_FLIGHT = Gauge(
    "relai_deployment_in_flight",
    "Calls running on a deployment of a model version now (workers' leases not expired).",
    ["model", "version", "deployment"],
)
DEPLOYMENT_COOLING = Gauge(
    "relai_deployment_cooling",
    "1 while a deployment is cooling down after failures (nothing new is sent to it), else 0.",
    ["model", "version", "deployment"],
)
DEPLOYMENT_ERROR_RATE = Gauge(
    "relai_deployment_error_rate",
    "Share of a deployment's calls that failed over the last 5 minutes; absent with no call.",
    ["model", "version", "deployment"],
)
DEPLOYMENT_LATENCY = Gauge(
    "relai_deployment_latency_seconds",
    "Mean latency of a deployment's calls over the last 5 minutes; absent with no call.",
    ["model", "version", "deployment"],
)
MODEL_DEPLOYMENTS_UP = Gauge(
    "relai_model_deployments_up",
    "Deployments of a model version not cooling down.",
    ["model", "version"],
)
MODEL_DEPLOYMENTS = Gauge(
    "relai_model_deployments",
    "Deployments of a model version in the catalog.",
    ["model", "version"],
)
