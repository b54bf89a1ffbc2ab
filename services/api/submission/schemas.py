"""What every front door answers a submission with, and the OpenAPI of its headers."""

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from libs.contracts import RequestStatus
from services.api.submission.rules import IDEMPOTENCY_KEY_MAX

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
]


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
