"""What clients see of an offer: its name, price and inputs, never its template or handler."""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

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
    service: str
    action: str
    price: int
    create_qty: int
    inputs: InputsSchema
    links: OfferLinks


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
        create_qty=offer.create_qty,
        inputs=inputs_schema(offer),
        links=OfferLinks(submit=submit_path(offer.service, offer.action)),
    )
