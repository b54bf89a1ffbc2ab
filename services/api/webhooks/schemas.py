"""What clients send to ``/webhooks`` and see of their endpoints, secrets and deliveries."""

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    field_validator,
)
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import PydanticCustomError

from libs.catalog.numbers import JsonInt
from libs.contracts.webhooks import REQUEST_EVENTS, WEBHOOK_EVENTS
from libs.db.text import text_problem
from services.api.text import StorableText
from services.api.webhooks.urls import URL_MAX, URL_PATTERN

OVERLAP_MAX_S = 604_800
"""The longest a rotated secret may keep signing beside the new one: a week."""
OVERLAP_DEFAULT_S = 86_400
DESCRIPTION_MAX = 500
EVENTS_MAX = 50


def _storable(value: Any) -> Any:
    if isinstance(value, str) and (problem := text_problem(value)) is not None:
        raise PydanticCustomError("unstorable_text", problem)
    return value


def _known_event(value: str) -> str:
    if value not in WEBHOOK_EVENTS:
        raise PydanticCustomError(
            "unknown_event",
            "unknown event; the events are: {events}",
            {"events": ", ".join(WEBHOOK_EVENTS)},
        )
    return value


def _unique(events: list[str]) -> list[str]:
    return list(dict.fromkeys(events))


WebhookUrl = Annotated[
    str,
    BeforeValidator(_storable),
    Field(
        min_length=1,
        max_length=URL_MAX,
        pattern="^https?://",
        json_schema_extra={"pattern": URL_PATTERN},
    ),
]
"""An http(s) URL; where it points is checked by the SSRF guard (``urls.check_webhook_url``)."""
Event = Annotated[
    str, AfterValidator(_known_event), Field(json_schema_extra={"enum": list(WEBHOOK_EVENTS)})
]
Events = Annotated[list[Event], Field(min_length=1, max_length=EVENTS_MAX), AfterValidator(_unique)]
"""The events wanted (each once, whatever the repeats sent)."""
Description = Annotated[StorableText, Field(max_length=DESCRIPTION_MAX)]


class EndpointBody(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    url: WebhookUrl
    """Where the events are sent (``POST``), http or https, at a public address unless the
    operator allows more (``RELAI_SSRF_ALLOW``)."""
    events: Events = Field(default_factory=lambda: list(REQUEST_EVENTS))
    """The events to send; by default the four ``request.*`` ones."""
    description: Description = ""


def _no_null_defaults(schema: dict[str, Any]) -> None:
    """A field left out is left unchanged; null is not a value it takes."""
    for field in schema.get("properties", {}).values():
        if "default" in field and field["default"] is None:
            del field["default"]


class EndpointPatch(BaseModel):
    """The fields to change; the others stay as they are."""

    model_config = ConfigDict(
        extra="forbid", use_attribute_docstrings=True, json_schema_extra=_no_null_defaults
    )

    url: WebhookUrl | SkipJsonSchema[None] = None
    events: Events | SkipJsonSchema[None] = None
    description: Description | SkipJsonSchema[None] = None
    enabled: StrictBool | SkipJsonSchema[None] = None
    """``true`` re-enables an endpoint (disabled by its owner or after failing too long): its
    ``disabled_reason`` and ``failing_since`` are cleared."""

    @field_validator("url", "events", "description", "enabled", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise PydanticCustomError("null", "may be left out, but not null")
        return value


class RotateBody(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    overlap_s: JsonInt = Field(default=OVERLAP_DEFAULT_S, ge=0, le=OVERLAP_MAX_S)
    """How long, in seconds, the secret being replaced keeps signing beside the new one (every
    delivery then carries both signatures), so that receivers can switch without a missed
    event; 0 stops it at once."""


class EndpointView(BaseModel):
    model_config = ConfigDict(use_attribute_docstrings=True)

    id: uuid.UUID
    url: str
    events: list[str]
    description: str
    enabled: bool
    disabled_reason: str | None
    """Why it is disabled: by its owner, or by the dispatcher after failing too long."""
    failing_since: datetime | None
    """Since when every attempt to it has failed (null while it answers)."""
    previous_secret_until: datetime | None
    """Until when the secret it had before its last rotation still signs beside the current one
    (null when it no longer does)."""
    created_at: datetime
    updated_at: datetime


class EndpointWithSecret(EndpointView):
    secret: str
    """The signing secret (``whsec_...``): shown at creation and rotation only."""


class SecretView(BaseModel):
    """The signing secret of the caller's one-off URLs (never the secret itself)."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    previous_secret_until: datetime | None
    """Until when the secret it had before its last rotation still signs beside the current one."""
    created_at: datetime
    updated_at: datetime
    """When it was last rotated (or created)."""


class SecretWithValue(SecretView):
    secret: str
    """The signing secret (``whsec_...``): shown at creation and rotation only."""


class AttemptView(BaseModel):
    model_config = ConfigDict(use_attribute_docstrings=True)

    n: int
    """1 for the first attempt."""
    at: datetime
    status_code: int | None
    """The receiver's HTTP status (null when none came: a timeout, a refused connection)."""
    latency_ms: float
    error: str | None


class DeliveryView(BaseModel):
    model_config = ConfigDict(use_attribute_docstrings=True)

    id: uuid.UUID
    webhook_id: str
    """The ``webhook-id`` header and the payload's ``id``: ``msg_`` and this id in hex, the same on
    every attempt and redelivery."""
    event: str
    endpoint_id: uuid.UUID | None
    """The endpoint it goes to; null for a request's one-off URL."""
    url: str | None
    """The one-off URL it goes to; null for an endpoint's delivery."""
    request_id: uuid.UUID | None
    """The request it reports (null for a ping)."""
    status: Literal["pending", "delivered", "failed"]
    """``pending`` until the receiver answered 2xx (``delivered``) or it was given up
    (``failed``)."""
    attempts: list[AttemptView]
    next_attempt_at: datetime | None
    """While pending: when it is tried next."""
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    payload: dict[str, Any]
    """The body sent, the same on every attempt."""


class DeliveryPage(BaseModel):
    items: list[DeliveryView]
    next_cursor: str | None
    """Pass as ``cursor`` to get the next (older) page; null on the last page."""


class Queued(BaseModel):
    """A delivery queued (a ping) or queued again (a redelivery): a dispatcher sends it at once."""

    id: uuid.UUID
    webhook_id: str
    status: Literal["pending"] = "pending"
