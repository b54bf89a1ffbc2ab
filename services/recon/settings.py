from functools import lru_cache

from pydantic import Field

from libs.settings import CommonSettings


class ReconSettings(CommonSettings):
    """Recon's settings: ``RELAI_RECON_HOST``, ``RELAI_RECON_PORT``, ... plus the common ones."""

    recon_host: str = "127.0.0.1"
    recon_port: int = Field(default=8001, ge=1, le=65535)
    recon_health_timeout: float = Field(default=2.0, gt=0)
    """Seconds each health probe (Postgres, Redis) may take before it counts as failed."""
    recon_completion_interval_s: float = Field(default=5.0, gt=0)
    """Seconds between two runs of the completion loop."""
    recon_stuck_after_s: float = Field(default=120.0, gt=0)
    """An unfinished request untouched this long (database clock) is a candidate for re-driving."""
    recon_max_attempts: int = Field(default=3, ge=1)
    """A stuck request already run this many times is failed and refunded instead."""
    recon_completion_batch: int = Field(default=1000, ge=1)
    """Most candidates looked at per run."""
    recon_expiry_interval_s: float = Field(default=10.0, gt=0)
    """Seconds between two runs of the expiry loop."""
    recon_expiry_batch: int = Field(default=500, ge=1)
    """Most requests expired per transaction."""


@lru_cache
def get_settings() -> ReconSettings:
    return ReconSettings()
