"""What every front door answers a submission with, and the OpenAPI of its headers."""

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from libs.contracts import RequestStatus
from services.api.submission.rules import IDEMPOTENCY_KEY_MAX
from services.api.webhooks.urls import URL_MAX, URL_PATTERN, WEBHOOK_URL_HEADER

TIER_HEADER = "Relai-Tier"
"""The priority tier a submission to a single offer asks for (``libs.contracts.tiers``)."""

SUBMIT_HEADERS = [
    {
        "name": "Idempotency-Key",
        "in": "header",
        "required": False,
        "schema": {"type": "string", "maxLength": IDEMPOTENCY_KEY_MAX},
        "description": "Ask for a new run of inputs already submitted.",
    },
    {
        "name": "traceparent",
        "in": "header",
        "required": False,
        "schema": {"type": "string"},
        "description": "W3C trace context the request joins; one is made otherwise.",
    },
    {
        "name": WEBHOOK_URL_HEADER,
        "in": "header",
        "required": False,
        "schema": {"type": "string", "maxLength": URL_MAX, "pattern": URL_PATTERN},
        "description": "A one-off URL the request's final state is sent to (request.* events, "
        "signed with the caller's one-off secret: POST /webhooks/secret), held to the rules of "
        "webhook endpoints' URLs.",
    },
]

OFFER_SUBMIT_HEADERS = [
    *SUBMIT_HEADERS,
    {
        "name": TIER_HEADER,
        "in": "header",
        "required": False,
        "schema": {"type": "string", "enum": ["auto", "flex", "default", "priority"]},
        "description": "The priority tier to be served at, among those the offer sells (its "
        "tiers): priority first and dearer, flex when there is room and cheaper. Absent or auto: "
        "the offer's default_tier. The request is billed at the tier it is served at when that "
        "is cheaper (GET shows served_tier).",
    },
]


SUBMIT_ERRORS: dict[int | str, dict[str, Any]] = {
    "400": {"description": "A body that is not a JSON object, or an Idempotency-Key too long"},
    "402": {"description": "The price is more than the available balance"},
    "404": {"description": "No such enabled offer or deal"},
    "422": {
        "description": "Inputs the call refuses, an Idempotency-Key already used for other "
        "inputs, or a Relai-Webhook-Url the SSRF guard refuses or that no one-off secret signs"
    },
    "429": {
        "description": "The credential's rate limit is spent, or the caller has as many "
        "unfinished requests as allowed",
    },
}
"""What a submission may answer besides 202 (and the errors of every call with credentials)."""


class Links(BaseModel):
    self: str
    websocket: str


class Submitted(BaseModel):
    id: uuid.UUID
    status: RequestStatus
    price: int
    duplicate: bool
    """True when this submission matched an earlier one: same id, nothing charged again."""
    links: Links


class StepView(BaseModel):
    """One step of a deal's request: one offer's job."""

    step: int
    service: str
    action: str
    role: str
    """``primary`` (one of the deal's offers) or ``addon``."""
    mode: str | None
    """Pipeline steps: ``overwrite``, ``extend`` or ``pass_through``."""
    price: int
    """This step's share of the request's price."""
    status: RequestStatus
    results: list[Any] | None
    error: str | None
    attempt: int
    started_at: datetime | None
    finished_at: datetime | None


def links_for(request_id: uuid.UUID) -> Links:
    return Links(self=f"/svc/request/{request_id}", websocket=f"/ws/requests/{request_id}")
