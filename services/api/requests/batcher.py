"""Group commit for submissions: concurrent submits share one statement and one commit.

A submit waits only for the batch in flight before it: under light load a batch holds one
request and nothing waits; under heavy load batches grow, and with them the rate the database
sustains (one round trip, one commit and one update of each user's balance per batch rather
than per request). The batch statement decides only the plain case; a request it does not
create (a duplicate, a short balance, a failed batch) goes through the one-request statement,
which gives the exact answer.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg

from libs.logs import get_logger
from services.api.requests import repository
from services.api.requests.repository import NewRequest

log = get_logger(__name__)


class SubmitBatcher:
    def __init__(
        self, pool: asyncpg.Pool[Any], *, stream: str, max_batch: int, flushers: int
    ) -> None:
        self._pool = pool
        self._stream = stream
        self._max_batch = max_batch
        self._flushers = flushers
        self._pending: list[tuple[NewRequest, asyncio.Future[bool]]] = []
        self._wake = asyncio.Event()

    async def submit(self, new: NewRequest) -> bool:
        """True when ``new`` was created; False when it already existed. Raises
        ``repository.ShortBalance`` when the user cannot pay for it."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending.append((new, future))
        self._wake.set()
        if await future:
            return True
        return await repository.insert_submission(self._pool, new, stream=self._stream)

    async def run(self) -> None:
        await asyncio.gather(*(self._flush_forever() for _ in range(self._flushers)))

    async def _flush_forever(self) -> None:
        while True:
            if not self._pending:
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = self._pending[: self._max_batch]
            del self._pending[: self._max_batch]
            await self._flush(batch)

    async def _flush(self, batch: list[tuple[NewRequest, asyncio.Future[bool]]]) -> None:
        created: set[uuid.UUID] = set()
        try:
            created = await repository.insert_submissions(
                self._pool, [new for new, _ in batch], stream=self._stream
            )
        except (asyncpg.PostgresError, OSError, asyncpg.InterfaceError) as exc:
            log.warning("batch submit failed; each request is retried alone", error=repr(exc))
        seen: set[uuid.UUID] = set()
        for new, future in batch:
            if not future.done():
                future.set_result(new.id in created and new.id not in seen)
            seen.add(new.id)
