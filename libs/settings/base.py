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
    when it is unset. May name a PgBouncer in transaction pooling mode: then set
    ``DATABASE_DIRECT_URL`` too."""
    database_direct_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("DATABASE_DIRECT_URL", "RELAI_DATABASE_DIRECT_URL"),
    )
    """The same database reached directly (not through a transaction pooler), for what needs a
    session of its own: ``LISTEN`` (the relay, the webhook dispatcher, the config watcher),
    recon's session-level advisory locks (who leads the alerts and the orphan sweep) and
    migrations. Unset: ``DATABASE_URL``. Set to another URL, ``DATABASE_URL`` is taken to be a
    transaction pooler (PgBouncer ``pool_mode = transaction``): its connections keep no
    prepared statements (asyncpg's statement cache off) and no session state."""
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
    blob_url: str = ".relai/blobs"
    """Where files' bytes are kept (``libs.blobs``): a directory (``file:///abs/dir`` or a path,
    relative to the working directory; ``relai run`` uses ``<data dir>/blobs``) that every
    process of one machine shares, or ``s3://bucket[/prefix]`` for several machines, configured
    by the standard ``AWS_*`` variables (``AWS_ENDPOINT_URL``, ``AWS_REGION``,
    ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_ALLOW_HTTP``)."""
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
    def direct_database_url(self) -> str:
        """Where session-level work connects: ``DATABASE_DIRECT_URL``, else ``DATABASE_URL``."""
        return self.database_direct_url or self.database_url

    @property
    def database_pooled(self) -> bool:
        """Whether ``DATABASE_URL`` goes through a transaction pooler (a direct URL apart)."""
        return self.direct_database_url != self.database_url

    @property
    def metrics_bearer(self) -> str | None:
        """The metrics token in clear, or None."""
        return self.metrics_token.get_secret_value() if self.metrics_token else None
