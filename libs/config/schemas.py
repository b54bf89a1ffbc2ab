"""What the configs Relai's services read must look like. Other config ids are free-form
mappings, stored and served as they are."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    ValidationError,
)

from libs.config.errors import ConfigError
from libs.contracts import HandlerId
from libs.security.params import credential_problem

HttpUrl = Annotated[str, StringConstraints(pattern=r"^https?://[^\s]+$")]
IntegrationName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_]+$")]
"""What ``params.integration`` names (letters, digits and ``_``, as the shared limits read it)."""


class Integration(BaseModel):
    """A provider account the operator configures: where it is and how to sign in. Catalog
    params name it (``integration: openai``) and never see its key; a job of an integration
    configured here calls its ``base_url`` and nothing the catalog says."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_url: HttpUrl
    """The provider's base URL (``https://api.openai.com/v1``); ``http.json`` posts to it plus
    the catalog's ``params.path``."""
    api_key: SecretStr | None = None
    """The credential, written ``~api_key`` (stored encrypted) or ``!ENV ${VAR}``."""
    auth_header: str = "Authorization"
    """The header ``http.json`` sends the key in (the other handlers use their provider's)."""
    auth_prefix: str = "Bearer "
    headers: dict[str, str] = Field(default_factory=dict)
    """More headers for every call (``OpenAI-Organization``...)."""


def _operator_params(params: dict[str, Any]) -> dict[str, Any]:
    problem = credential_problem(params)
    if problem:
        raise ValueError(problem)
    return params


class WorkerConfig(BaseModel):
    """Config id ``worker``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    integrations: dict[IntegrationName, Integration] = Field(default_factory=dict)
    """Provider accounts by name; a job whose params name one calls it with its key."""
    handlers: dict[HandlerId, Annotated[dict[str, Any], AfterValidator(_operator_params)]] = Field(
        default_factory=dict
    )
    """Params by handler id (``openai.chat: {integration: openai, model: ...}``), laid over the
    params each job of that handler carries from the catalog. No credentials: those belong to
    ``integrations``."""


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
    webhook_backlog_age_s: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    """Unset: ``RELAI_WEBHOOK_BACKLOG_ALERT_S``."""


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
