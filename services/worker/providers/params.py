"""Handler and offer ``params`` every provider handler understands, validated per job."""

from collections.abc import Mapping
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from services.worker.providers.errors import PermanentError

P = TypeVar("P", bound="ProviderParams")


class ProviderParams(BaseModel):
    # Offers carry params of their own (and other handlers'); unknown keys are not an error.
    model_config = ConfigDict(extra="ignore", frozen=True)

    base_url: str | None = None
    model: str | None = None
    api_key: SecretStr | None = None
    """The integration's key (``services.worker.config.with_integration``); a task that carries
    one of its own is refused before it gets here."""
    headers: dict[str, str] = Field(default_factory=dict)
    body: dict[str, Any] = Field(default_factory=dict)
    """Extra request fields merged into the provider's request (temperature, max_tokens ...)."""
    stream: bool = False
    timeout_s: float = Field(default=60.0, gt=0)
    """Longest wait for the provider to send anything (read timeout, per chunk when streaming)."""
    connect_timeout_s: float = Field(default=10.0, gt=0)
    max_retries: int = Field(default=3, ge=0, le=20)
    backoff_s: float = Field(default=0.5, ge=0)
    """First retry waits up to this (random, doubling on each retry: exponential full jitter)."""
    backoff_max_s: float = Field(default=30.0, ge=0)
    retry_after_max_s: float = Field(default=60.0, ge=0)
    """A provider's ``Retry-After`` is honoured up to this many seconds."""

    @classmethod
    def parse(cls: type[P], params: Mapping[str, Any]) -> P:
        try:
            return cls.model_validate(dict(params))
        except ValidationError as exc:
            problems = [
                f"{'.'.join(str(p) for p in err['loc']) or 'params'}: {err['msg']}"
                for err in exc.errors()[:3]
            ]
            raise PermanentError(f"invalid params: {'; '.join(problems)}") from None

    @property
    def timeout(self) -> httpx.Timeout:
        return httpx.Timeout(self.timeout_s, connect=self.connect_timeout_s)

    def required(self, name: str) -> str:
        value = getattr(self, name)
        if not value:
            raise PermanentError(f"invalid params: {name} is required")
        return str(value)

    def key(self) -> str | None:
        return self.api_key.get_secret_value() if self.api_key is not None else None

    def endpoint(self, path: str) -> str:
        return self.required("base_url").rstrip("/") + path
