"""``/v1/responses`` answers: the ``response`` object of a request in any state, and its event
stream, numbered so that a client that lost the connection resumes after the last event it saw,
on any API replica.

The numbering follows from the request alone: 0 ``response.created``; once it has started, 1
``response.in_progress``, 2 ``response.output_item.added``, 3 ``response.content_part.added``;
then one ``response.output_text.delta`` per chunk the worker wrote (chunk ``i`` is event
``4 + i``; an answer written at once is one delta); then the ``.done`` events and
``response.completed``, or ``response.failed``."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import orjson

from libs.contracts import RequestStatus
from services.api.openai.completions import KEEPALIVE, service_tier
from services.api.openai.follow import Chunk, Final, StillRunning, Tick

PREFIX = "resp_"
MESSAGE_PREFIX = "msg_"
STATUS = {
    RequestStatus.PENDING: "queued",
    RequestStatus.RUNNING: "in_progress",
    RequestStatus.SUCCEEDED: "completed",
    RequestStatus.FAILED: "failed",
    RequestStatus.EXPIRED: "failed",
    RequestStatus.CANCELLED: "cancelled",
}
_FIRST_DELTA = 4


def response_id(request_id: uuid.UUID) -> str:
    return PREFIX + request_id.hex


def _message_id(request_id: uuid.UUID) -> str:
    return MESSAGE_PREFIX + request_id.hex


def _usage(usage: dict[str, int] | None) -> dict[str, Any] | None:
    if not usage:
        return None
    tokens_in = int(usage.get("input_tokens", 0))
    tokens_out = int(usage.get("output_tokens", 0))
    return {
        "input_tokens": tokens_in,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": tokens_out,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": tokens_in + tokens_out,
    }


def _part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _item(request_id: uuid.UUID, texts: list[str], *, done: bool) -> dict[str, Any]:
    return {
        "id": _message_id(request_id),
        "type": "message",
        "status": "completed" if done else "in_progress",
        "role": "assistant",
        "content": [_part(t) for t in texts],
    }


def response(
    row: asyncpg.Record, *, background: bool | None = None, model: str | None = None
) -> dict[str, Any]:
    """The ``response`` object of the request ``row`` (its view), in its current state;
    ``model`` is the name it was asked under (an alias is not recorded: its offer's
    ``service/action`` otherwise)."""
    status = RequestStatus(row["status"])
    request_id: uuid.UUID = row["id"]
    output: list[dict[str, Any]] = []
    if status is RequestStatus.SUCCEEDED and row["results"]:
        output = [_item(request_id, _texts(row["results"]), done=True)]
    error = None
    if status in (RequestStatus.FAILED, RequestStatus.EXPIRED):
        error = {"code": "server_error", "message": row["error"] or status.value}
    return {
        "id": response_id(request_id),
        "object": "response",
        "created_at": int(row["created_at"].timestamp()),
        "status": STATUS[status],
        "background": background,
        "error": error,
        "incomplete_details": None,
        "instructions": None,
        "max_output_tokens": None,
        "model": model or f"{row['service']}/{row['action']}",
        "output": output,
        "parallel_tool_calls": False,
        "temperature": None,
        "tool_choice": "none",
        "tools": [],
        "top_p": None,
        "usage": _usage(row["usage"]),
        "service_tier": service_tier(row),
        "metadata": {},
    }


def _event(kind: str, sequence: int, **fields: Any) -> bytes:
    data = {"type": kind, "sequence_number": sequence, **fields}
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


class _Stream:
    """The numbered events of one request, built as its chunks and its end arrive; only
    those numbered after ``starting_after`` are kept."""

    def __init__(self, first: asyncpg.Record, starting_after: int, model: str | None) -> None:
        self.first = first
        self.model = model
        self.request_id: uuid.UUID = first["id"]
        self.starting_after = starting_after
        self.where = {
            "item_id": _message_id(self.request_id),
            "output_index": 0,
            "content_index": 0,
        }
        self.sequence = -1
        self.begun = False
        self.attempt: int | None = None
        self.written = 0
        """Chunks passed on (before ``starting_after`` included)."""

    def _response(self, row: asyncpg.Record) -> dict[str, Any]:
        return response(row, model=self.model)

    def _numbered(self, out: list[bytes], kind: str, **fields: Any) -> None:
        self.sequence += 1
        if self.sequence > self.starting_after:
            out.append(_event(kind, self.sequence, **fields))

    def opening(self) -> list[bytes]:
        out: list[bytes] = []
        self._numbered(out, "response.created", response=self._response(self.first))
        if self.first["started_at"] is not None:
            self._begin(out)
        return out

    def _begin(self, out: list[bytes]) -> None:
        if self.begun:
            return
        self.begun = True
        running = self._response(self.first) | {
            "status": "in_progress",
            "output": [],
            "usage": None,
            "error": None,  # as it was when it started, whatever it is now
        }
        self._numbered(out, "response.in_progress", response=running)
        item = _item(self.request_id, [], done=False)
        self._numbered(out, "response.output_item.added", output_index=0, item=item)
        self._numbered(out, "response.content_part.added", part=_part(""), **self.where)

    def chunk(self, chunk: Chunk) -> tuple[list[bytes], bool]:
        """The events of a chunk, and whether the stream ends with them."""
        out: list[bytes] = []
        if chunk.starts_over(self.attempt, self.written):
            self._failed(out, self.first, RESTARTED)
            return out, True
        self.attempt = chunk.attempt
        self.written += 1
        self._begin(out)
        self._numbered(out, "response.output_text.delta", delta=chunk.text, **self.where)
        return out, False

    def ending(self, final: Final) -> list[bytes]:
        out: list[bytes] = []
        row = final.row
        if final.status is not RequestStatus.SUCCEEDED:
            if row["started_at"] is not None:
                self._begin(out)
            self._failed(out, row, None)
            return out
        if self.written and row["attempt"] != self.attempt:
            self._failed(out, row, RESTARTED)
            return out
        self._begin(out)
        text = next(iter(_texts(row["results"])), "")
        if not self.written:
            self._numbered(out, "response.output_text.delta", delta=text, **self.where)
        done = self._response(row)
        self._numbered(out, "response.output_text.done", text=text, **self.where)
        self._numbered(out, "response.content_part.done", part=_part(text), **self.where)
        item = done["output"][0] if done["output"] else _item(self.request_id, [text], done=True)
        self._numbered(out, "response.output_item.done", output_index=0, item=item)
        self._numbered(out, "response.completed", response=done)
        return out

    def _failed(self, out: list[bytes], row: asyncpg.Record, message: str | None) -> None:
        body = self._response(row)
        if message is not None:
            body |= {"status": "failed", "error": {"code": "server_error", "message": message}}
        self._numbered(out, "response.failed", response=body)


RESTARTED = "the worker writing this answer was lost and the request started over"


def _texts(results: list[Any] | None) -> list[str]:
    return [r if isinstance(r, str) else str(r) for r in results or []]


async def events(
    first: asyncpg.Record,
    items: AsyncIterator[Chunk | Tick | Final],
    *,
    starting_after: int = -1,
    model: str | None = None,
) -> AsyncIterator[bytes]:
    """The request's events after number ``starting_after``: ``first`` is its row when the
    stream was asked for, ``items`` what follows it (``follow``, from its first chunk). A
    stream that outlives the wait just ends: resume it with ``starting_after``."""
    stream = _Stream(first, starting_after, model)
    for event in stream.opening():
        yield event
    try:
        async for item in items:
            if isinstance(item, Tick):
                yield KEEPALIVE
                continue
            if isinstance(item, Chunk):
                out, ended = stream.chunk(item)
            else:
                out, ended = stream.ending(item), True
            for event in out:
                yield event
            if ended:
                return
    except StillRunning:
        return
