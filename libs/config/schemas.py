"""What the configs Relai's services read must look like. Other config ids are free-form
mappings, stored and served as they are."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from libs.config.errors import ConfigError
from libs.contracts import HandlerId


class WorkerConfig(BaseModel):
    """Config id ``worker``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    handlers: dict[HandlerId, dict[str, Any]] = Field(default_factory=dict)
    """Params by handler id (``openai.chat: {base_url: ..., api_key: ...}``), laid over the
    params each job of that handler carries from the catalog."""


class ApiLimits(BaseModel):
    """Limits every API replica applies; each one unset falls back to its process setting."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rate_per_s: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    """Calls per second allowed per credential; 0: no limit (``RELAI_RATE_LIMIT_PER_S``)."""
    burst: int | None = Field(default=None, ge=1)
    """Calls a credential may make at once (``RELAI_RATE_LIMIT_BURST``)."""
    max_unfinished_per_user: int | None = Field(default=None, ge=0)
    """Most pending or running requests per user; 0: no cap
    (``RELAI_MAX_UNFINISHED_PER_USER``)."""


class ApiConfig(BaseModel):
    """Config id ``api``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ask_offer: Annotated[str, StringConstraints(pattern=r"^[^/\s]+/[^/\s]+$")] | None = None
    """``service/action`` of the offer behind ``POST /ask``; ``RELAI_ASK_OFFER`` when unset."""
    limits: ApiLimits | None = None


class AlertsConfig(BaseModel):
    """Recon's alerts; each setting unset falls back to its ``RELAI_RECON_ALERT_*`` setting."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    webhook_url: Annotated[str, StringConstraints(pattern=r"^https?://[^\s]+$")] | None = None
    """Where alerts go (a Discord-compatible webhook). A credential: keep it as ``~webhook_url``."""
    cooldown_s: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    outbox_age_s: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    stuck_age_s: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    budget_ratio: float | None = Field(default=None, gt=0, le=1)


class ReconConfig(BaseModel):
    """Config id ``recon``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    alerts: AlertsConfig | None = None


SCHEMAS: dict[str, type[BaseModel]] = {
    "worker": WorkerConfig,
    "api": ApiConfig,
    "recon": ReconConfig,
}


def validate(config_id: str, data: dict[str, Any]) -> Any:
    """``data`` as its schema's model, or as it is for a config id without one."""
    schema = SCHEMAS.get(config_id)
    if schema is None:
        return data
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        # Only where and what: the input may hold decrypted secrets.
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or '(top)'}: {error['msg']}"
            for error in exc.errors()
        )
        raise ConfigError(f"not a valid {config_id!r} config: {problems}") from None
