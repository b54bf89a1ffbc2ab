import asyncio
import random

from redis.exceptions import ResponseError


class Backoff:
    """Exponential backoff with jitter for loops that must outlive a Redis outage."""

    def __init__(self, *, initial: float = 0.1, maximum: float = 5.0) -> None:
        self._initial = initial
        self._maximum = maximum
        self._failures = 0

    def reset(self) -> None:
        self._failures = 0

    def next_delay(self) -> float:
        delay = min(self._maximum, self._initial * 2.0**self._failures)
        self._failures += 1
        return delay * random.uniform(0.5, 1.0)

    async def sleep(self, stop: asyncio.Event | None = None) -> None:
        """Wait the next delay, returning early once ``stop`` is set."""
        delay = self.next_delay()
        if stop is None:
            await asyncio.sleep(delay)
            return
        try:
            await asyncio.wait_for(stop.wait(), delay)
        except TimeoutError:
            pass


def is_nogroup(exc: BaseException) -> bool:
    """The group (or the stream) is gone, e.g. Redis restarted without persistence."""
    return isinstance(exc, ResponseError) and str(exc).startswith("NOGROUP")


def describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
