from functools import lru_cache

from pydantic import Field, model_validator

from libs.settings import CommonSettings


class DispatcherSettings(CommonSettings):
    """The webhook dispatcher's settings: ``RELAI_DISPATCHER_*`` for the process,
    ``RELAI_WEBHOOK_*`` for how deliveries are made, plus the common ones (``RELAI_SSRF_ALLOW``
    decides which receivers beyond the public internet it may reach)."""

    dispatcher_host: str = "127.0.0.1"
    """Address the dispatcher's HTTP server (``/health``) and its metrics bind."""
    dispatcher_port: int = Field(default=8002, ge=1, le=65535)
    """Port of the dispatcher's HTTP server (``/health``)."""
    dispatcher_metrics_port: int = Field(default=9104, ge=0, le=65535)
    """Port of the dispatcher's Prometheus metrics (0: off), on ``RELAI_DISPATCHER_HOST``; a
    port already taken only warns."""
    dispatcher_poll_s: float = Field(default=5.0, gt=0)
    """Longest wait between two looks for due deliveries; new deliveries wake the dispatcher at
    once (``LISTEN relai_webhooks``) and a scheduled retry when it falls due, so this only
    bounds how late a delivery whose dispatcher died is taken over (after its lease) or one is
    seen while the notifications are lost."""
    dispatcher_health_timeout: float = Field(default=2.0, gt=0)
    """Seconds the Postgres probe of ``/health`` may take before it counts as failed."""
    webhook_timeout_s: float = Field(default=10.0, gt=0)
    """Seconds one attempt may take, connection and answer included; longer is a failed
    attempt."""
    webhook_retry_base_s: float = Field(default=5.0, gt=0)
    """Wait after a first failed attempt; it doubles with each attempt (half of it random
    jitter), up to ``RELAI_WEBHOOK_RETRY_CAP_S``. A receiver's ``Retry-After`` is honoured
    within the same bounds."""
    webhook_retry_cap_s: float = Field(default=3600.0, gt=0)
    """Longest wait between two attempts of one delivery."""
    webhook_retry_for_s: float = Field(default=86400.0, gt=0)
    """How long a delivery is retried, counted from its event (or from a redelivery asked);
    past it, it is given up (``failed``)."""
    webhook_disable_after_s: float = Field(default=259200.0, gt=0)
    """An endpoint whose deliveries have failed without a success for this long is disabled
    (as it is at once when it answers 410 Gone); its pending deliveries are then failed."""
    webhook_concurrency: int = Field(default=32, ge=1)
    """Deliveries in flight at once, per dispatcher process."""
    webhook_lease_s: float = Field(default=60.0, gt=0)
    """How long a claimed delivery is reserved to its dispatcher: another one takes it over
    only after this, so it must exceed ``RELAI_WEBHOOK_TIMEOUT_S`` (checked at startup)."""

    @model_validator(mode="after")
    def _lease_outlasts_an_attempt(self) -> "DispatcherSettings":
        if self.webhook_lease_s <= self.webhook_timeout_s:
            raise ValueError(
                "RELAI_WEBHOOK_LEASE_S must exceed RELAI_WEBHOOK_TIMEOUT_S: a lease that ends "
                "while its attempt may still run lets another dispatcher send it in parallel"
            )
        if self.webhook_retry_cap_s < self.webhook_retry_base_s:
            raise ValueError(
                "RELAI_WEBHOOK_RETRY_CAP_S must be at least RELAI_WEBHOOK_RETRY_BASE_S"
            )
        return self


@lru_cache
def get_settings() -> DispatcherSettings:
    return DispatcherSettings()
