"""The dispatcher's Prometheus metrics, served by ``libs.telemetry.serving_metrics`` on
``RELAI_DISPATCHER_METRICS_PORT``. Labels stay bounded: the outcome of an attempt is one of
three, and no endpoint, user or URL is ever a label."""

from prometheus_client import Counter, Gauge, Histogram

DELIVERIES = Counter(
    "relai_webhook_deliveries",
    "Webhook attempts by outcome: delivered (a 2xx), retry (failed, tried again later) or "
    "failed (given up, or its endpoint disabled).",
    ["outcome"],
)
DELIVERED = DELIVERIES.labels(outcome="delivered")
RETRY = DELIVERIES.labels(outcome="retry")
FAILED = DELIVERIES.labels(outcome="failed")
ATTEMPT_SECONDS = Histogram(
    "relai_webhook_attempt_seconds",
    "Time one delivery attempt took, connection and answer (or failure) included.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
ENDPOINTS_DISABLED = Counter(
    "relai_webhook_endpoints_disabled",
    "Endpoints the dispatcher disabled: failing past RELAI_WEBHOOK_DISABLE_AFTER_S, or gone (410).",
)
IN_FLIGHT = Gauge(
    "relai_webhook_in_flight",
    "Deliveries this dispatcher is sending now (at most RELAI_WEBHOOK_CONCURRENCY).",
)
