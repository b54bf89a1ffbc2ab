"""The task messages, by what queues them: a request's (or a deal step's) first run, a
re-drive of one whose worker was lost, a pipeline's next step. Each returns the message as the
relay publishes it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from libs.contracts import TaskMessage
from libs.contracts.files import FileRef
from libs.contracts.models import Route
from libs.contracts.tiers import DEFAULT_TIER, Tier


@dataclass(frozen=True, slots=True)
class Run:
    """What a job runs: ``handler`` with ``params`` on ``prompt``, for ``create_qty`` results;
    a chat request's ``messages`` (``prompt`` is the last of them) and sampling ``options``."""

    handler: str
    prompt: str
    params: dict[str, Any]
    create_qty: int = 1
    messages: list[dict[str, str]] | None = None
    options: dict[str, Any] | None = None
    files: dict[str, FileRef] | None = None
    """Input files by name (``libs.contracts.files``)."""
    tier: Tier = DEFAULT_TIER
    """The priority tier its request asked for (``libs.contracts.tiers``)."""
    route: Route | None = None
    """The deployments of the model it runs (``libs.contracts.models``), if any."""


def _task(run: Run, **fields: Any) -> str:
    if run.tier != DEFAULT_TIER:
        fields["tier"] = run.tier
    message = TaskMessage(
        handler=run.handler,
        prompt=run.prompt,
        params=run.params,
        create_qty=run.create_qty,
        messages=run.messages,
        options=run.options,
        files=run.files,
        route=run.route,
        **fields,
    )
    return message.model_dump_json(exclude_none=True)


def first_run(
    run: Run,
    *,
    request_id: uuid.UUID,
    user_id: uuid.UUID,
    traceparent: str,
    step: int | None = None,
) -> str:
    """The first attempt of a request, or of one step of a deal's request."""
    return _task(
        run, request_id=request_id, user_id=user_id, traceparent=traceparent, attempt=1, step=step
    )


def redrive(
    run: Run,
    *,
    request_id: uuid.UUID,
    traceparent: str | None,
    attempt: int,
    step: int | None = None,
    user_id: uuid.UUID | None = None,
) -> str:
    """Attempt ``attempt`` (> 1) of a job whose earlier attempt was lost; ``user_id`` keeps its
    place among its user's jobs under fair scheduling."""
    return _task(
        run,
        request_id=request_id,
        traceparent=traceparent,
        attempt=attempt,
        step=step,
        user_id=user_id,
    )


def next_step(run: Run, *, request_id: uuid.UUID, traceparent: str | None, step: int) -> str:
    """A pipeline's next step, its prompt rendered from what the previous step passed on."""
    return _task(run, request_id=request_id, traceparent=traceparent, attempt=1, step=step)
