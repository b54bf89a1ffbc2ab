from functools import lru_cache

from pydantic import Field

from libs.settings import CommonSettings


class ReconSettings(CommonSettings):
    """Recon's settings: ``RELAI_RECON_HOST``, ``RELAI_RECON_PORT``, ... plus the common ones."""

    recon_host: str = "127.0.0.1"
    """Address recon's HTTP server (``/health``) and its metrics bind."""
    recon_port: int = Field(default=8001, ge=1, le=65535)
    """Port of recon's HTTP server (``/health``)."""
    recon_health_timeout: float = Field(default=2.0, gt=0)
    """Seconds each health probe (Postgres, Redis) may take before it counts as failed."""
    recon_completion_interval_s: float = Field(default=5.0, gt=0)
    """Seconds between two runs of the completion loop."""
    recon_stuck_after_s: float = Field(default=120.0, gt=0)
    """An unfinished request untouched this long (database clock) is a candidate for re-driving;
    sooner when its offer's ``job_timeout_s`` (plus the grace below) ends first."""
    recon_deadline_grace_s: float = Field(default=5.0, ge=0)
    """How long past its offer's ``job_timeout_s`` a request is given before it counts as stuck."""
    recon_max_attempts: int = Field(default=3, ge=1)
    """A stuck request already run this many times is failed and refunded instead."""
    recon_completion_batch: int = Field(default=1000, ge=1)
    """Most candidates looked at per run."""
    recon_weights_interval_s: float = Field(default=10.0, gt=0)
    """Seconds between two copies of the users' scheduling weights from Postgres into Redis."""
    recon_deployments_interval_s: float = Field(default=5.0, gt=0)
    """Seconds between two reads of the models' deployments: in flight, cooling down, calls and
    errors of the last 5 minutes (``/health`` and the ``relai_deployment_*`` gauges)."""
    recon_usage_interval_s: float = Field(default=60.0, gt=0)
    """Seconds between two runs of the usage aggregation."""
    recon_usage_lag_s: float = Field(default=10.0, ge=0)
    """A request is counted in usage this long after it ended (its commit is visible by then)."""
    recon_alert_webhook_url: str | None = None
    """Where alerts go (a Discord-compatible webhook); unset: alerts are only logged."""
    recon_alertmanager_url: str | None = None
    """Alertmanager's base URL (``http://alertmanager:9093``): alerts are posted there too, to be
    grouped with Prometheus's and sent once per cause; unset: not posted."""
    recon_alertmanager_hold_s: float = Field(default=60.0, ge=0)
    """A cleared alert stays firing in Alertmanager this many seconds before it is posted
    resolved, so that Prometheus's alert of the same cause, which it silences, resolves first."""
    recon_alert_interval_s: float = Field(default=15.0, gt=0)
    """Seconds between two evaluations of the alert rules (on the leading replica)."""
    recon_alert_cooldown_s: float = Field(default=900.0, ge=0)
    """A condition still firing is announced again only after this many seconds."""
    recon_alert_outbox_age_s: float = Field(default=30.0, gt=0)
    """Relay stalled: the oldest unpublished outbox row is older than this."""
    recon_alert_stuck_age_s: float = Field(default=900.0, gt=0)
    """Requests stuck: the oldest unfinished request is older than this."""
    recon_alert_budget_ratio: float = Field(default=0.9, gt=0, le=1)
    """Budget nearly spent: an integration spent this share of its window's credit budget."""
    webhook_backlog_alert_s: float = Field(default=900.0, gt=0)
    """Webhook deliveries late: the oldest pending delivery has waited longer than this since it
    was queued or sent again (alert ``webhook_backlog_old``)."""
    recon_metrics_port: int = Field(default=9102, ge=0, le=65535)
    """Port of recon's Prometheus metrics (0: off), on ``RELAI_RECON_HOST``; a port already taken
    only warns."""
    recon_metrics_interval_s: float = Field(default=10.0, gt=0)
    """Seconds between two samples of the backlog, the streams and the top spenders."""
    recon_top_users: int = Field(default=10, ge=0, le=100)
    """How many top spenders ``relai_user_spend_top_credits`` names."""
    recon_top_users_window_s: float = Field(default=86400.0, gt=0)
    """The window over which spend is ranked (seconds, database clock)."""
    recon_expiry_interval_s: float = Field(default=10.0, gt=0)
    """Seconds between two runs of the expiry loop."""
    recon_expiry_batch: int = Field(default=500, ge=1)
    """Most requests expired per transaction."""
    webhook_retention_s: float = Field(default=604800.0, gt=0)
    """Webhook deliveries delivered or given up are deleted, with their attempts, this long after
    they finished (their last attempt); pending ones never are."""
    webhook_retention_interval_s: float = Field(default=300.0, gt=0)
    """Seconds between two runs of the webhook retention."""
    webhook_retention_batch: int = Field(default=1000, ge=1)
    """Most webhook deliveries deleted per transaction."""
    blob_grace_s: float = Field(default=3600.0, ge=0)
    """A blob no file refers to is deleted from the store (and forgotten) once untouched this
    long: the time an upload or a result has between storing its bytes and the row that refers to
    them. An object written within this time is left for the next run."""
    blob_orphan_after_s: float = Field(default=86400.0, ge=0)
    """An object in the store that Postgres has no row for (a worker killed after storing a
    result and before it was recorded) is deleted once last written this long ago. Keep it well
    above the time a result may wait in the results stream before it is recorded."""
    blob_collect_interval_s: float = Field(default=60.0, gt=0)
    """Seconds between two runs of the collection of expired uploads and unreferenced blobs (each
    replica runs it; they share the work)."""
    blob_collect_batch: int = Field(default=100, ge=1)
    """Most unreferenced blobs deleted per transaction (their objects are deleted while it is
    open), and most expired uploads."""
    blob_orphan_interval_s: float = Field(default=3600.0, gt=0)
    """Seconds between two sweeps for orphans, which list the whole store (one replica sweeps:
    the one that holds the sweep's advisory lock)."""
    blob_orphan_limit: int = Field(default=10000, ge=1)
    """Most orphans deleted per sweep; the next sweep goes on."""


@lru_cache
def get_settings() -> ReconSettings:
    return ReconSettings()
