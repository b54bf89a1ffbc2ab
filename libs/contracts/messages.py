"""Versioned, frozen message models carried by the streams and the events channel.

Every message carries the request id and the W3C ``traceparent`` of the request's trace.
"""

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from libs.contracts.files import FileRef
from libs.contracts.models import Route
from libs.contracts.status import RequestStatus
from libs.contracts.tiers import DEFAULT_TIER, Tier

SCHEMA_VERSION = 1


class _Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    v: int = SCHEMA_VERSION
    request_id: UUID
    traceparent: str | None = None


class TaskMessage(_Message):
    """A job for a worker: run ``handler`` on ``prompt``."""

    attempt: int = Field(ge=1)
    handler: str
    prompt: str
    params: dict[str, Any] = Field(default_factory=dict)
    create_qty: int = Field(default=1, ge=1)
    step: int | None = Field(default=None, ge=0)
    """The step of a deal's request this job is; None for a single-offer request."""
    user_id: UUID | None = None
    """Who asked: the worker's fairness between users waiting for the same integration."""
    messages: list[dict[str, str]] | None = None
    """A chat request's conversation, ``[{"role", "content"}]`` (``prompt`` is its last turn);
    handlers that take a conversation send it instead of the prompt."""
    options: dict[str, Any] | None = None
    """A chat request's sampling options (``temperature``, ``max_tokens``...), which provider
    handlers add to the provider's request."""
    files: dict[str, FileRef] | None = None
    """The request's input files by the offer's name for each; the worker reads their bytes
    from the blob store."""
    tier: Tier = DEFAULT_TIER
    """The tier the request asked for: under fair scheduling, the queue it waits in."""
    route: Route | None = None
    """For an offer of a model: the deployments that serve it (``libs.contracts.models``)."""


class ChunkMessage(_Message):
    """A piece of a request's partial output, on ``relai:chunks:{request_id}``."""

    attempt: int = Field(ge=1)
    text: str
    step: int | None = Field(default=None, ge=0)
    """The step of a deal's request that wrote it; None for a single-offer request."""
    index: int | None = Field(default=None, ge=0)
    """Its place in the output of the execution that wrote it, from 0. A 0 after other chunks
    means the job started over (its worker was lost and another runs it again, under the same
    attempt or the next): what was read before is not part of the answer."""


class ResultMessage(_Message):
    """What a worker reports about a job: it started, or it ended with results or an error."""

    attempt: int = Field(ge=1)
    kind: Literal["started", "succeeded", "failed"]
    results: list[Any] | None = None
    error: str | None = None
    worker: str
    usage: dict[str, int] | None = None
    """Provider usage of the job (``input_tokens``, ``output_tokens`` ...), when it reported any."""
    step: int | None = Field(default=None, ge=0)
    """Copied from the task: the step of a deal's request it reports on."""
    tier: Tier | None = None
    """The tier the job was served at (on ``started`` and on its end): the one it asked for
    when the worker's scheduling honoured it, else ``default``. None from a worker that does
    not say: ``default``."""
    deployment: str | None = None
    """On the end of a job of a model: the deployment (integration) whose answer it reports,
    or, for a failure, the last one called. None for a job without a route."""
    model: str | None = None
    """With ``deployment``: ``name@version`` of the model it called (one of the route's
    fallbacks when the model itself could not answer)."""


class RequestEvent(_Message):
    """A request's new state, fanned out to every API replica for its WebSocket subscribers."""

    user_id: UUID
    status: RequestStatus
    results: list[Any] | None = None
    error: str | None = None
    updated_at: datetime
    usage: dict[str, int] | None = None
    """Provider usage, once the request has ended with some."""


EVENT_BATCH = TypeAdapter(list[RequestEvent])
"""One message on the events channel: the state changes of one committed batch."""
