import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from libs.contracts import RequestStatus
from services.api.submission.schemas import Links, StepView
from services.api.text import StorableText


class AskBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: StorableText


class RequestView(BaseModel):
    id: uuid.UUID
    service: str
    action: str
    status: RequestStatus
    inputs: dict[str, Any]
    results: list[Any] | None
    error: str | None
    usage: dict[str, int] | None = None
    """Provider usage of the job that ended the request (``input_tokens``, ``output_tokens``)."""
    price: int
    tier: str = "default"
    """The priority tier it asked for (``Relai-Tier``); ``price`` is that tier's."""
    served_tier: str | None = None
    """The tier its job was served at, once it started: the one asked for where the workers
    honour tiers, else ``default``; when that is cheaper, it is what the request is billed at."""
    model: str | None = None
    """For an offer of a model: ``name@version``, the model version it was routed to."""
    attempt: int
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    links: Links
    steps: list[StepView] | None = None
    """A deal's request: each step's status, price and results."""
    queue_position: int | None = None
    """While pending: 1 + the caller's own pending requests for the same handler and tier
    submitted earlier; exact up to 100, past it the coarse step below (200, 500, 1000...: at
    least that many ahead). Other users' requests are not counted: it tells nothing of their
    activity."""
    queue_eta_s: int | None = None
    """While pending: about how many seconds until it ends, from its position and the rate at
    which the caller's requests for the same handler ended in the last minute; none when none
    did."""


class Cancelled(BaseModel):
    id: uuid.UUID
    status: RequestStatus
    refunded: int
    """Credits returned to the balance: the request's whole reservation, or for a deal the
    shares of the steps it did not deliver."""


class RequestPage(BaseModel):
    items: list[RequestView]
    next_cursor: str | None
    """Pass as ``cursor`` to get the next (older) page; null on the last page."""
