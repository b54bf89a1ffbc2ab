"""What clients see of an offer: its name, prices and inputs, never its template or handler."""

from typing import Any, Literal

from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field
from starlette.routing import Match
from starlette.types import Scope

from libs.catalog.file_inputs import FileInputSpec
from libs.catalog.spec import RESERVED_SERVICES as RESERVED
from libs.catalog.values import json_number
from services.api.catalog.service import Offer
from services.api.text import STORABLE_PATTERN


class StringInput(BaseModel):
    type: Literal["string"] = "string"
    pattern: str = STORABLE_PATTERN
    """Any text Postgres can store: no NUL."""


FILE_ID_PATTERN = "^file-[0-9a-f]{32}$"


class FileIdInput(BaseModel):
    type: Literal["string"] = "string"
    pattern: str = FILE_ID_PATTERN
    """A file input, named by the id of one of the caller's files (``POST /files``)."""


class InputsSchema(BaseModel):
    """The JSON Schema of the body ``POST /svc/<service>/<action>`` takes."""

    model_config = ConfigDict(populate_by_name=True)

    type: Literal["object"] = "object"
    properties: dict[str, StringInput | FileIdInput]
    required: list[str]
    """The template's variables, in the order they first appear in it, then the required file
    inputs."""
    additional_properties: Literal[False] = Field(default=False, alias="additionalProperties")


class OfferLinks(BaseModel):
    submit: str


class ModelInfo(BaseModel):
    """The model version an offer runs."""

    model_config = ConfigDict(use_attribute_docstrings=True, from_attributes=True)

    name: str
    version: str
    """The version its requests are routed to now (the model's default unless the offer pins
    one); each request keeps the version it was routed to (``model`` on the request)."""
    description: str
    context_window: int
    """The most tokens a request may hold, input and output together: a longer one is refused
    at submission (422) before anything is reserved."""
    max_output_tokens: int
    input_modalities: list[str]
    output_modalities: list[str]


def model_info(offer: Offer) -> ModelInfo | None:
    return None if offer.model is None else ModelInfo.model_validate(offer.model)


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
    files: dict[str, FileInputSpec]
    """The file inputs, by name: the media types each accepts (recognised from the bytes), its
    most bytes and pixels, and whether it is required. Send them as parts of a
    ``multipart/form-data`` body, or as the ids of your uploads (``POST /files``) in a JSON
    one."""
    tiers: dict[str, int]
    """The priority tiers it sells (``flex``, ``default``, ``priority``), each as a percentage
    of the prices above: name one with the ``Relai-Tier`` header (``service_tier`` at ``/v1``)."""
    default_tier: str
    """The tier of a request that names none."""
    model: ModelInfo | None = None
    """The model it runs, if it names one."""
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
    properties: dict[str, StringInput | FileIdInput] = {v: StringInput() for v in variables}
    properties.update(dict.fromkeys(offer.files, FileIdInput()))
    return InputsSchema(properties=properties, required=[*variables, *offer.required_files])


def multipart_schema(offer: Offer) -> dict[str, Any]:
    """The ``multipart/form-data`` body of an offer with file inputs: its variables as text
    fields, its files as file parts (OpenAPI's ``format: binary``); and each part's encoding."""
    schema = inputs_schema(offer).model_dump(by_alias=True)
    for name in offer.files:
        schema["properties"][name] = {"type": "string", "format": "binary"}
    encoding = {name: {"contentType": ", ".join(spec.types)} for name, spec in offer.files.items()}
    return {"schema": schema, "encoding": encoding}


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
        files=dict(offer.files),
        tiers=offer.tiers_sold,
        default_tier=offer.default_tier,
        model=model_info(offer),
        links=OfferLinks(submit=submit_path(offer.service, offer.action)),
    )
