from functools import lru_cache

from pydantic import Field

from libs.settings import CommonSettings


class ReconSettings(CommonSettings):
    """Recon's settings: ``RELAI_RECON_HOST``, ``RELAI_RECON_PORT``, ... plus the common ones."""

    recon_host: str = "127.0.0.1"
    recon_port: int = Field(default=8001, ge=1, le=65535)
    recon_health_timeout: float = Field(default=2.0, gt=0)
    """Seconds each health probe (Postgres, Redis) may take before it counts as failed."""


@lru_cache
def get_settings() -> ReconSettings:
    return ReconSettings()
