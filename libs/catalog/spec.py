"""The declarative catalog file: handlers and offers, validated before anything is written."""

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from libs.catalog.template import PromptTemplate

_SLUG = r"^[a-z0-9][a-z0-9_-]*$"
RESERVED_SERVICES = frozenset({"request", "requests"})
"""``/svc/request/{id}`` and ``/svc/requests`` belong to the requests API."""


class HandlerSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9_]+\.[a-z0-9_]+$")
    credits: int = Field(default=0, ge=0)
    params: dict[str, Any] = Field(default_factory=dict)
    max_concurrency: int | None = Field(default=None, ge=1)
    enabled: bool = True


class OfferSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    service: str = Field(pattern=_SLUG)
    action: str = Field(pattern=_SLUG)
    price: int = Field(ge=0)
    prompt_template: str
    handler: str
    create_qty: int = Field(default=1, ge=1)
    expiration: int | None = Field(default=None, ge=1)
    params: dict[str, Any] = Field(default_factory=dict)
    enabled: bool = True

    @field_validator("service")
    @classmethod
    def _service_is_not_reserved(cls, value: str) -> str:
        if value in RESERVED_SERVICES:
            raise ValueError(f"service name {value!r} is reserved by the API's own routes")
        return value

    @field_validator("prompt_template")
    @classmethod
    def _template_is_safe(cls, value: str) -> str:
        PromptTemplate.parse(value)
        return value


class CatalogSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    handlers: list[HandlerSpec] = Field(default_factory=list)
    offers: list[OfferSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _offers_name_known_handlers(self) -> "CatalogSpec":
        known = {h.id for h in self.handlers}
        for offer in self.offers:
            if offer.handler not in known:
                raise ValueError(
                    f"offer {offer.service}/{offer.action} names handler {offer.handler!r}, "
                    "which the catalog does not define"
                )
        return self


def load_catalog_file(path: Path) -> CatalogSpec:
    return CatalogSpec.model_validate(yaml.safe_load(path.read_text()) or {})
