"""Shapes of Redis stream replies, and what can be salvaged from an entry that is not a task."""

import json
from typing import Any
from uuid import UUID

from pydantic import ValidationError

from libs.contracts.streams import MESSAGE_FIELD

Fields = dict[bytes, bytes]
Entry = tuple[bytes, Fields | None]
"""An entry id and its fields; ``None`` fields mean the entry was deleted from the stream."""


def autoclaim_entries(reply: Any) -> tuple[bytes, list[Entry], list[bytes]]:
    """XAUTOCLAIM's next cursor, claimed entries, and ids whose payload was deleted (redis >= 7)."""
    cursor: bytes = reply[0]
    claimed = [(e[0], e[1]) for e in reply[1] if e[0] is not None]
    deleted: list[bytes] = list(reply[2]) if len(reply) > 2 else []
    return cursor, claimed, deleted


def describe_invalid(exc: Exception) -> str:
    if isinstance(exc, KeyError):
        return f"no {MESSAGE_FIELD.decode()!r} field"
    if isinstance(exc, ValidationError):
        problems = [
            f"{'.'.join(str(p) for p in err['loc']) or 'message'}: {err['msg']}"
            for err in exc.errors()[:3]
        ]
        return "; ".join(problems)
    return f"{type(exc).__name__}: {exc}"


def salvage(fields: Fields | None) -> tuple[UUID, int, str | None] | None:
    """The request id, attempt and traceparent of an invalid task, when they can still be read."""
    try:
        data = json.loads((fields or {})[MESSAGE_FIELD])
        request_id = UUID(str(data["request_id"]))
    except (KeyError, TypeError, ValueError):
        return None
    attempt = data.get("attempt")
    if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 1:
        attempt = 1
    traceparent = data.get("traceparent")
    return request_id, attempt, traceparent if isinstance(traceparent, str) else None


def salvage_step(fields: Fields | None) -> int | None:
    """The step of a deal's request an invalid task was for, when it can still be read: its
    failure must reach that step."""
    try:
        step = json.loads((fields or {})[MESSAGE_FIELD]).get("step")
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        return None
    return step
