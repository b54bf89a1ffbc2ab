"""``/v1/chat/completions`` answers: the ``chat.completion`` object of an ended request, and the
``chat.completion.chunk`` events of one being written, as OpenAI's clients read them."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson

from libs.contracts import RequestStatus
from services.api.errors import Conflict, RelaiError
from services.api.openai.follow import Chunk, Final, StillRunning, Tick
from services.api.openai.service import text_of

PREFIX = "chatcmpl-"
DONE = b"data: [DONE]\n\n"
KEEPALIVE = b": keepalive\n\n"


class ProviderFailed(RelaiError):
    status_code, code = 502, "provider_error"


class StillRunningError(RelaiError):
    status_code, code = 504, "timeout"


def completion_id(request_id: uuid.UUID) -> str:
    return PREFIX + request_id.hex


def usage_of(usage: dict[str, int] | None) -> dict[str, int]:
    prompt = int((usage or {}).get("input_tokens", 0))
    completion = int((usage or {}).get("output_tokens", 0))
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def ending_error(final: Final) -> RelaiError:
    """What a call waiting for the request answers when it did not succeed."""
    row = final.row
    status = final.status
    if status is RequestStatus.CANCELLED:
        return Conflict(f"the request {row['id']} was cancelled", status=status.value)
    what = "expired before it was delivered" if status is RequestStatus.EXPIRED else "failed"
    return ProviderFailed(f"the request {row['id']} {what}: {row['error'] or status.value}")


def completion(final: Final, model: str) -> dict[str, Any]:
    row = final.row
    return {
        "id": completion_id(row["id"]),
        "object": "chat.completion",
        "created": int(row["created_at"].timestamp()),
        "model": model,
        "choices": [
            {
                "index": index,
                "message": {"role": "assistant", "content": text, "refusal": None},
                "finish_reason": "stop",
                "logprobs": None,
            }
            for index, text in enumerate(text_of(row["results"]))
        ],
        "usage": usage_of(row["usage"]),
        "service_tier": service_tier(row),
        "system_fingerprint": None,
    }


def service_tier(row: Any) -> str:
    """The tier a request was served at (``served_tier``), or until it starts, the one it
    asked for."""
    served: str | None = row["served_tier"]
    return served if served is not None else str(row["tier"])


def _event(data: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(data) + b"\n\n"


def error_event(message: str, kind: str, code: str) -> bytes:
    """An error in the stream, as OpenAI's clients raise it (``APIError``)."""
    return _event({"error": {"message": message, "type": kind, "param": None, "code": code}})


async def chunks(
    events: AsyncIterator[Chunk | Tick | Final],
    *,
    request_id: uuid.UUID,
    model: str,
    created: int,
    include_usage: bool,
) -> AsyncIterator[bytes]:
    """The stream of a chat completion: a first chunk naming the role, one chunk per piece of
    output the worker wrote (or the whole answer at once, when the handler wrote none), the
    finishing chunk, the usage chunk when asked, and ``[DONE]``; or an error event when the
    request fails, or when its output started over (the worker writing it was lost, and
    another attempt began: what was sent cannot be taken back)."""
    base = {"id": completion_id(request_id), "object": "chat.completion.chunk", "created": created}
    base["model"] = model

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
        return _event({**base, "choices": [choice]})

    yield chunk({"role": "assistant", "content": ""})
    attempt: int | None = None
    sent = 0
    try:
        async for item in events:
            if isinstance(item, Tick):
                yield KEEPALIVE
            elif isinstance(item, Chunk):
                if item.starts_over(attempt, sent):
                    yield _restarted(request_id)
                    return
                attempt = item.attempt
                sent += 1
                yield chunk({"content": item.text})
            else:
                for event in _ending(item, chunk, base, sent, attempt, include_usage):
                    yield event
                return
    except StillRunning:
        yield error_event(
            f"the request {request_id} is still running; read it later at "
            f"/svc/request/{request_id}",
            "timeout_error",
            "timeout",
        )


def _ending(
    final: Final,
    chunk: Callable[..., bytes],
    base: dict[str, Any],
    sent: int,
    attempt: int | None,
    include_usage: bool,
) -> list[bytes]:
    if final.status is not RequestStatus.SUCCEEDED:
        error = ending_error(final)
        return [error_event(error.message, "server_error", error.code)]
    if sent and final.row["attempt"] != attempt:
        return [_restarted(final.row["id"])]
    out = [] if sent else [chunk({"content": text_of(final.row["results"])[0]})]
    out.append(chunk({}, "stop"))
    if include_usage:
        out.append(_event({**base, "choices": [], "usage": usage_of(final.row["usage"])}))
    out.append(DONE)
    return out


def _restarted(request_id: uuid.UUID) -> bytes:
    return error_event(
        f"the worker writing this answer was lost and the request {request_id} started over; "
        f"its result will be at /svc/request/{request_id}",
        "server_error",
        "restarted",
    )
