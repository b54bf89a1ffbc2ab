"""What clients see of a deal and send to it."""

import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from libs.contracts import RequestStatus
from services.api.catalog.deals import Deal
from services.api.catalog.schemas import InputsSchema, StringInput
from services.api.submission import Links, StepView
from services.api.text import STORABLE_PATTERN, StorableText


def _text_to_text(schema: dict[str, Any]) -> None:
    """The inputs as checked (``check_string_fields``): storable names, each to storable text."""
    schema.pop("patternProperties", None)
    schema["propertyNames"] = {"pattern": STORABLE_PATTERN}
    schema["additionalProperties"] = {"type": "string", "pattern": STORABLE_PATTERN}


class DealBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    inputs: dict[StorableText, Any] = Field(default_factory=dict, json_schema_extra=_text_to_text)
    """The template variables of the deal's first offers (and of the selected add-ons)."""
    addons: list[StorableText] = Field(default_factory=list)
    """Add-ons to run too, as ``service/action``."""


class DealOfferView(BaseModel):
    service: str
    action: str
    price: int
    """The offer's own list price."""
    mode: str | None = None


class DealLinks(BaseModel):
    submit: str


class DealView(BaseModel):
    slug: str
    price: int
    """The price without add-ons."""
    pipeline: bool
    offers: list[DealOfferView]
    addons: list[DealOfferView]
    addons_modifier: float
    inputs: InputsSchema
    """Every input the deal takes; an add-on's inputs are required only when it is selected."""
    links: DealLinks


class DealSubmitted(BaseModel):
    id: uuid.UUID
    status: RequestStatus
    price: int
    duplicate: bool
    steps: list[StepView]
    links: Links


def deal_path(slug: str) -> str:
    return f"/deal/{slug}"


def deal_inputs_schema(deal: Deal) -> InputsSchema:
    variables = deal.variables()
    return InputsSchema(
        properties={v: StringInput() for v in variables}, required=deal.required([])
    )


def _offer_view(service_action: str, price: int, mode: str | None = None) -> DealOfferView:
    service, _, action = service_action.partition("/")
    return DealOfferView(service=service, action=action, price=price, mode=mode)


def deal_view(deal: Deal) -> DealView:
    return DealView(
        slug=deal.slug,
        price=deal.base_price,
        pipeline=deal.pipeline,
        offers=[
            _offer_view(f"{s.offer.service}/{s.offer.action}", s.offer.price, s.mode)
            for s in deal.steps
        ],
        addons=[_offer_view(name, offer.price) for name, offer in deal.addons.items()],
        addons_modifier=float(deal.addons_modifier),
        inputs=deal_inputs_schema(deal),
        links=DealLinks(submit=deal_path(deal.slug)),
    )
