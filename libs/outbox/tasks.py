"""The task messages, by what queues them: a request's (or a deal step's) first run, a
re-drive of one whose worker was lost, a pipeline's next step. Each returns the message as the
relay publishes it."""

from __future__ import annotations

import uuid
from typing import Any

from libs.contracts import TaskMessage


def _payload(**fields: Any) -> str:
    return TaskMessage(**fields).model_dump_json(exclude_none=True)


def first_run(
    *,
    request_id: uuid.UUID,
    user_id: uuid.UUID | None,
    traceparent: str | None,
    handler: str,
    prompt: str,
    params: dict[str, Any],
    create_qty: int,
    step: int | None = None,
) -> str:
    """The first attempt of a request, or of one step of a deal's request."""
    return _payload(
        request_id=request_id,
        user_id=user_id,
        traceparent=traceparent,
        attempt=1,
        handler=handler,
        prompt=prompt,
        params=params,
        create_qty=create_qty,
        step=step,
    )


def redrive(
    *,
    request_id: uuid.UUID,
    traceparent: str | None,
    attempt: int,
    handler: str,
    prompt: str,
    params: dict[str, Any],
    create_qty: int,
    step: int | None = None,
) -> str:
    """Attempt ``attempt`` (> 1) of a job whose earlier attempt was lost."""
    return _payload(
        request_id=request_id,
        traceparent=traceparent,
        attempt=attempt,
        handler=handler,
        prompt=prompt,
        params=params,
        create_qty=create_qty,
        step=step,
    )


def next_step(
    *,
    request_id: uuid.UUID,
    traceparent: str | None,
    step: int,
    handler: str,
    prompt: str,
    params: dict[str, Any],
    create_qty: int,
) -> str:
    """A pipeline's next step, its prompt rendered from what the previous step passed on."""
    return _payload(
        request_id=request_id,
        traceparent=traceparent,
        attempt=1,
        handler=handler,
        prompt=prompt,
        params=params,
        create_qty=create_qty,
        step=step,
    )
