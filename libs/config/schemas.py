"""What the configs Relai's services read must look like. Other config ids are free-form
mappings, stored and served as they are."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from libs.config.errors import ConfigError

HandlerId = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")]


class WorkerConfig(BaseModel):
    """Config id ``worker``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    handlers: dict[HandlerId, dict[str, Any]] = Field(default_factory=dict)
    """Params by handler id (``openai.chat: {base_url: ..., api_key: ...}``), laid over the
    params each job of that handler carries from the catalog."""


class ApiConfig(BaseModel):
    """Config id ``api``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ask_offer: Annotated[str, StringConstraints(pattern=r"^[^/\s]+/[^/\s]+$")] | None = None
    """``service/action`` of the offer behind ``POST /ask``; ``RELAI_ASK_OFFER`` when unset."""


SCHEMAS: dict[str, type[BaseModel]] = {"worker": WorkerConfig, "api": ApiConfig}


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
