"""The rules every front door's submissions follow: inputs are strings Postgres can store, the
request id is derived from what was asked, and the trace context is one the client sent or a
new one."""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from typing import Any

import orjson

from libs.db.text import text_problem
from services.api.errors import BadRequest, InvalidInputs

REQUEST_ID_NAMESPACE = uuid.UUID("5f0c7f3e-8a4b-4d1e-9a57-2c1e0d6b9a10")
IDEMPOTENCY_KEY_MAX = 200


def check_string_fields(data: dict[str, Any], expected: Sequence[str], *, noun: str) -> None:
    """``data`` has exactly the ``expected`` names, each a string Postgres can store; else a 422
    naming the missing, unknown, non-string and unstorable (NUL or unpaired surrogate) ones
    (``noun``: fields, inputs)."""
    missing = [name for name in expected if name not in data]
    unknown = sorted(name for name in data if name not in expected)
    if missing or unknown:
        parts = []
        if missing:
            parts.append(f"missing {noun}: " + ", ".join(missing))
        if unknown:
            parts.append(f"unknown {noun}: " + ", ".join(unknown))
        raise InvalidInputs("; ".join(parts), missing=missing, unknown=unknown)
    not_strings = [name for name in expected if not isinstance(data[name], str)]
    if not_strings:
        raise InvalidInputs(
            f"{noun} must be strings: " + ", ".join(not_strings), not_strings=not_strings
        )
    by_problem: dict[str, list[str]] = {}
    for name in expected:
        if (problem := text_problem(data[name])) is not None:
            by_problem.setdefault(problem, []).append(name)
    if by_problem:
        raise InvalidInputs(
            "; ".join(
                f"{noun} {problem}: " + ", ".join(names) for problem, names in by_problem.items()
            ),
            not_text=[name for names in by_problem.values() for name in names],
        )


def idempotency_key(value: str | None) -> str | None:
    """The ``Idempotency-Key`` header, once known to fit. An empty one is refused rather than
    taken as a key: it is a client's bug (an unset variable), and every such call would name the
    same request."""
    if value is None:
        return None
    if not value.strip():
        raise BadRequest("Idempotency-Key is empty: send a key, or no Idempotency-Key header")
    if len(value) > IDEMPOTENCY_KEY_MAX:
        raise BadRequest(f"Idempotency-Key is longer than {IDEMPOTENCY_KEY_MAX} characters")
    return value


def derive_request_id(
    user_id: uuid.UUID, key: Sequence[Any], idempotency_key: str | None
) -> uuid.UUID:
    """The same user asking for the same ``key`` (what is bought and with which inputs) always
    names the same request, so a resubmission is a duplicate; an ``Idempotency-Key`` lets a
    client ask for a new run of the same inputs."""
    canonical = orjson.dumps([str(user_id), *key, idempotency_key], option=orjson.OPT_SORT_KEYS)
    return uuid.uuid5(REQUEST_ID_NAMESPACE, canonical.decode())


def new_traceparent() -> str:
    # Trace ids must be unique, not secret: the fast generator is enough.
    return f"00-{random.getrandbits(128):032x}-{random.getrandbits(64):016x}-01"


def valid_traceparent(value: str | None) -> str | None:
    if value is None:
        return None
    parts = value.strip().lower().split("-")
    if len(parts) != 4 or [len(p) for p in parts] != [2, 32, 16, 2]:
        return None
    if any(c not in "0123456789abcdef" for c in "".join(parts)):
        return None
    return "-".join(parts)
