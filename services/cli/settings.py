from functools import lru_cache
from pathlib import Path

from pydantic import Field

from libs.settings import CommonSettings

ROOT = Path(__file__).resolve().parents[2]
"""The source tree: ``alembic.ini``, ``migrations/`` and ``catalog/`` live here."""


class CliSettings(CommonSettings):
    """What the ``relai`` command reads from the environment (``RELAI_*``)."""

    alembic_config: Path = ROOT / "alembic.ini"
    """The Alembic configuration ``relai migrate`` and ``relai run`` use."""
    api_host: str = "127.0.0.1"
    """Address ``relai run`` gives ``relai-api`` (``--host``) and checks for free ports."""
    api_port: int = Field(default=8000, ge=1, le=65535)
    """Port ``relai run`` gives ``relai-api`` (``--port``, and ``RELAI_API_PORT`` in its
    environment)."""
    recon_port: int = Field(default=8001, ge=1, le=65535)
    """Port ``relai run`` gives ``relai-recon`` (``RELAI_RECON_PORT`` in its environment)."""
    dispatcher_port: int = Field(default=8002, ge=1, le=65535)
    """Port ``relai run`` gives ``relai-dispatcher`` (``RELAI_DISPATCHER_PORT`` in its
    environment)."""
    data_dir: Path = Path(".relai")
    """Where ``relai run`` keeps the embedded servers' data and, while it runs, ``stack.json``
    (see ``services.cli.local_stack``)."""
    demo_catalog: Path = ROOT / "catalog" / "demo.yaml"
    """The catalog ``relai run`` applies at start (upserting only: entries added through the
    admin API stay)."""
    demo_user: str = "demo"
    """The user ``relai run`` makes sure exists, and issues a fresh API key at each start."""
    demo_credits: int = Field(default=1_000_000, ge=0)
    """The opening balance of that user, when ``relai run`` creates it."""
    startup_timeout: float = Field(default=60.0, gt=0)
    """Seconds ``relai run`` waits for the API to answer ``/health``."""
    stop_timeout: float = Field(default=10.0, gt=0)
    """Seconds a child has to exit after SIGTERM before it is killed."""

    @property
    def database_configured(self) -> bool:
        """Whether DATABASE_URL was given (the default is only a placeholder)."""
        return "database_url" in self.model_fields_set

    @property
    def redis_configured(self) -> bool:
        return "redis_url" in self.model_fields_set


@lru_cache
def get_settings() -> CliSettings:
    return CliSettings()
