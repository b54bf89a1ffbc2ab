"""When a failed delivery is tried again: exponential backoff with jitter, for a bounded time.

Attempt ``n`` (1 for the first) that fails waits ``base_s * 2**(n-1)``, at most ``cap_s``, of
which a random half is jitter (so that receivers coming back are not hit by every retry at
once). A ``Retry-After`` from the receiver is honoured within ``[base_s, cap_s]``. Past
``retry_for_s`` since the event (or since its redelivery was asked), it is given up.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    base_s: float = 5.0
    cap_s: float = 3600.0
    retry_for_s: float = 86400.0

    def delay(
        self,
        attempt: int,
        *,
        retry_after_s: float | None = None,
        rand: Callable[[], float] = random.random,
    ) -> float:
        """Seconds to wait after attempt ``attempt`` failed."""
        if retry_after_s is not None:
            return min(max(retry_after_s, self.base_s), self.cap_s)
        full = min(self.base_s * 2.0 ** (attempt - 1), self.cap_s)
        return float(full / 2 + rand() * full / 2)

    def gives_up(self, elapsed_s: float, delay_s: float) -> bool:
        """Whether a delivery retried for ``elapsed_s`` stops instead of waiting ``delay_s``."""
        return elapsed_s + delay_s > self.retry_for_s


def retry_after_seconds(value: str | None, *, now: datetime | None = None) -> float | None:
    """A ``Retry-After`` header in seconds: a number of seconds, or an HTTP date; None when
    absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
