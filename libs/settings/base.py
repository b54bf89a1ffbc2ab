from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class CommonSettings(BaseSettings):
    """What every Relai process needs: where Postgres and Redis are, and how to log.

    ``DATABASE_URL`` and ``REDIS_URL`` keep their conventional names; everything else is
    prefixed ``RELAI_``. Each service subclasses this with its own fields. Every field carries a
    docstring: ``docs/settings.md`` is generated from them (``make docs``).
    """

    model_config = SettingsConfigDict(
        env_prefix="RELAI_", extra="ignore", frozen=True, use_attribute_docstrings=True
    )

    database_url: str = Field(
        default="postgresql://postgres@127.0.0.1:5432/relai",
        validation_alias=AliasChoices("DATABASE_URL", "RELAI_DATABASE_URL"),
    )
    """The Postgres database. ``relai run`` starts an embedded server (data in ``.relai/``)
    when it is unset."""
    redis_url: str = Field(
        default="redis://127.0.0.1:6379/0",
        validation_alias=AliasChoices("REDIS_URL", "RELAI_REDIS_URL"),
    )
    """The Redis (or Valkey) server and database. ``relai run`` starts an embedded Valkey when
    it is unset."""
    log_level: str = "INFO"
    """The lowest level logged."""
    log_json: bool = True
    """One JSON object a line on stderr; false: lines for humans."""
    config_file: Path | None = None
    """The component's bootstrap config (``config.yaml``): where its central configs are stored,
    with which Fernet keys, and which ones it loads; unset: no central config. ``relai run`` and
    compose point each service at ``config/<service>.bootstrap.yaml``; ``relai config`` reads
    ``config/bootstrap.yaml`` when it is unset."""
    config_poll_s: float = Field(default=5.0, gt=0)
    """How often a running process checks for a newly activated config, besides notifications."""
    mongo_url: str | None = Field(
        default=None, validation_alias=AliasChoices("MONGO_URL", "RELAI_MONGO_URL")
    )
    """The MongoDB server of a bootstrap config with ``meta.source: mongo``."""
    ssrf_allow: list[str] = []
    """Host names and IP networks that handler URLs, provider calls and webhook receivers may
    reach although they are not public (a JSON list, e.g.
    ``["127.0.0.1", "10.0.0.0/8", "llm.internal"]``); see ``libs.security.ssrf``."""
    metrics_token: SecretStr | None = None
    """When set (16 characters or more; empty: unset), every metrics endpoint answers only a
    scrape that sends ``Authorization: Bearer <token>`` (401 otherwise), and the API also serves
    ``GET /metrics`` on its public port. Unset, metrics are served on the operator ports only
    (``RELAI_API_METRICS_PORT``, ``RELAI_WORKER_METRICS_PORT``, ``RELAI_RECON_METRICS_PORT``,
    ``RELAI_DISPATCHER_METRICS_PORT``), without a token."""

    @field_validator("metrics_token", mode="before")
    @classmethod
    def _blank_token_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("metrics_token")
    @classmethod
    def _token_long_enough(cls, token: SecretStr | None) -> SecretStr | None:
        if token is not None and len(token.get_secret_value().strip()) < 16:
            raise ValueError("RELAI_METRICS_TOKEN must be at least 16 characters long")
        return token

    @property
    def metrics_bearer(self) -> str | None:
        """The metrics token in clear, or None."""
        return self.metrics_token.get_secret_value() if self.metrics_token else None
