import asyncio


class Slots:
    """A counter of free job slots that callers take in bulk before asking Redis for entries.

    Taking before the command (and giving back what the reply did not fill) is what keeps the
    read and reclaim loops together from ever holding more than ``limit`` jobs.
    """

    def __init__(self, limit: int) -> None:
        self._free = limit
        self._changed = asyncio.Event()

    @property
    def free(self) -> int:
        return self._free

    def take(self, most: int) -> int:
        taken = min(most, self._free)
        self._free -= taken
        return taken

    def release(self, count: int = 1) -> None:
        if count:
            self._free += count
            self._changed.set()

    def wake(self) -> None:
        """Wake ``wait_free`` waiters so that they can see their stop event."""
        self._changed.set()

    async def wait_free(self, stop: asyncio.Event) -> None:
        while self._free <= 0 and not stop.is_set():
            self._changed.clear()
            await self._changed.wait()
