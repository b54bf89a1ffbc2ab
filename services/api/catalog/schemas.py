"""What clients see of an offer: its name, prices and inputs, never its template or handler."""

from typing import Literal

from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field
from starlette.routing import Match
from starlette.types import Scope

from libs.catalog.spec import RESERVED_SERVICES as RESERVED
from libs.catalog.spec import json_number
from services.api.catalog.service import Offer
from services.api.text import STORABLE_PATTERN


class StringInput(BaseModel):
    type: Literal["string"] = "string"
    pattern: str = STORABLE_PATTERN
    """Any text Postgres can store: no NUL."""


class InputsSchema(BaseModel):
    """The JSON Schema of the body ``POST /svc/<service>/<action>`` takes."""

    model_config = ConfigDict(populate_by_name=True)

    type: Literal["object"] = "object"
    properties: dict[str, StringInput]
    required: list[str]
    """The template's variables, in the order they first appear in it."""
    additional_properties: Literal[False] = Field(default=False, alias="additionalProperties")


class OfferLinks(BaseModel):
    submit: str


class OfferView(BaseModel):
    model_config = ConfigDict(use_attribute_docstrings=True)

    service: str
    action: str
    price: int
    """Credits per request; with token prices, the base a request pays beside its tokens."""
    input_price: int | float | None
    """Credits per 1,000 input tokens; null: a fixed price."""
    output_price: int | float | None
    """Credits per 1,000 output tokens; null: a fixed price."""
    max_output_tokens: int | None
    """The most output tokens a request may ask for. At token prices a submission reserves the
    most it can cost (its input counted as one token per UTF-8 byte, and this many output
    tokens) and is charged what its usage costs."""
    create_qty: int
    aliases: list[str]
    """Other names of the offer, as a ``model`` at the OpenAI-compatible door (``/v1``)."""
    inputs: InputsSchema
    links: OfferLinks


class OfferRoute(APIRoute):
    """A route whose ``service_name`` is never a reserved service: ``/svc/request/...`` belongs
    to the requests API for every method, so a method it does not take there is 405 (with its
    ``Allow``), not a submission to a service that cannot exist."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child = super().matches(scope)
        if match is not Match.NONE and child["path_params"].get("service_name") in RESERVED:
            return Match.NONE, {}
        return match, child


def submit_path(service: str, action: str) -> str:
    return f"/svc/{service}/{action}"


def inputs_schema(offer: Offer) -> InputsSchema:
    variables = offer.template.variables
    return InputsSchema(properties={v: StringInput() for v in variables}, required=list(variables))


def offer_view(offer: Offer) -> OfferView:
    return OfferView(
        service=offer.service,
        action=offer.action,
        price=offer.price,
        input_price=None if offer.input_price is None else json_number(offer.input_price),
        output_price=None if offer.output_price is None else json_number(offer.output_price),
        max_output_tokens=offer.max_output_tokens,
        create_qty=offer.create_qty,
        aliases=list(offer.aliases),
        inputs=inputs_schema(offer),
        links=OfferLinks(submit=submit_path(offer.service, offer.action)),
    )
