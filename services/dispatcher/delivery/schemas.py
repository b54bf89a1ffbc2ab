"""What the dispatcher handles: a delivery it claimed, the attempt it made, what came of it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Literal

Outcome = Literal["delivered", "retry", "failed", "stale", "gone"]
"""``stale``: the delivery's lease had ended and another attempt was claimed meanwhile, so this
one changed nothing but its attempt's record; ``gone``: the delivery was deleted with its
endpoint while in flight."""


@dataclass(frozen=True, slots=True)
class Claimed:
    """A delivery leased to this dispatcher for attempt number ``attempt``."""

    id: uuid.UUID
    user_id: uuid.UUID
    endpoint_id: uuid.UUID | None
    request_id: uuid.UUID | None
    event: str
    url: str
    payload: str
    attempt: int
    secrets: tuple[str, ...]
    """The secrets to sign with: the current one, and the previous one during its overlap."""


@dataclass(frozen=True, slots=True)
class Attempt:
    """One try: the receiver's status code (None when no answer came) or what went wrong."""

    latency_s: float
    status_code: int | None = None
    error: str | None = None
    retry_after_s: float | None = None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


@dataclass(frozen=True, slots=True)
class Recorded:
    outcome: Outcome
    endpoint_disabled: bool = False
    """This attempt disabled its endpoint."""
    stopped: int = 0
    """Pending deliveries failed with it (``endpoint disabled``)."""
    retry_in_s: float | None = None
    """When the next attempt is due (``retry``)."""
