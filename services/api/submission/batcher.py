"""Group commit for submissions: concurrent submits share one statement and one commit.

A submit waits only for the batch in flight before it: under light load a batch holds one
request and nothing waits; under heavy load batches grow, and with them the rate the database
sustains (one round trip, one commit and one update of each user's balance per batch rather
than per request). The batch statement decides only the plain case; a request it does not
create (a duplicate, a short balance, a failed batch) goes through the one-request statement,
which gives the exact answer. A request with input files always goes through the one-request
statement: its files rows are written there, and the batch statement is not worth widening for
them (an upload costs far more than the round trip that batching saves).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable

import asyncpg

from libs.db import PgPool
from libs.logs import get_logger
from services.api.metrics import HOP_COMMIT
from services.api.submission import repository
from services.api.submission.repository import NewRequest

log = get_logger(__name__)

Outcome = asyncio.Future[bool | None]
"""True: created; False: it already existed; None: undecided, ask the one-request statement."""


class SubmitBatcher:
    def __init__(
        self,
        pool: PgPool,
        *,
        max_batch: int,
        flushers: int,
        on_commit: Callable[[], None],
    ) -> None:
        self._pool = pool
        self._on_commit = on_commit
        self._max_batch = max_batch
        self._flushers = flushers
        self._pending: list[tuple[NewRequest, Outcome]] = []
        self._wake = asyncio.Event()

    async def submit(self, new: NewRequest) -> bool:
        """True when ``new`` was created; False when it already existed. Raises
        ``ShortBalance`` or ``KeyReused`` as ``repository.insert_one`` does."""
        started = time.perf_counter()
        created = await self._submit(new)
        if created:
            HOP_COMMIT.observe(time.perf_counter() - started)
        return created

    async def _submit(self, new: NewRequest) -> bool:
        if new.files:
            created = await repository.insert_one(self._pool, new)
            if created:
                self._on_commit()
            return created
        outcome: Outcome = asyncio.get_running_loop().create_future()
        self._pending.append((new, outcome))
        self._wake.set()
        decided = await outcome
        if decided is not None:
            return decided
        return await repository.insert_one(self._pool, new)

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
            if len(batch) == 1:
                await self._flush_one(*batch[0])
            else:
                await self._flush(batch)

    async def _flush_one(self, new: NewRequest, outcome: Outcome) -> None:
        # Alone, the one-request statement is cheaper to plan and run (about a third of the
        # batch statement's time): an idle system answers sooner.
        try:
            created = await repository.insert_one(self._pool, new)
        except Exception as exc:  # handed to the waiting submit, which raises it
            if not outcome.done():
                outcome.set_exception(exc)
            return
        if created:
            self._on_commit()
        if not outcome.done():
            outcome.set_result(created)

    async def _flush(self, batch: list[tuple[NewRequest, Outcome]]) -> None:
        created: set[uuid.UUID] = set()
        try:
            created = await repository.insert_many(self._pool, [new for new, _ in batch])
        except (asyncpg.PostgresError, OSError, asyncpg.InterfaceError) as exc:
            log.warning("batch submit failed; each request is retried alone", error=repr(exc))
        if created:
            self._on_commit()
        seen: set[uuid.UUID] = set()
        for new, outcome in batch:
            if not outcome.done():
                outcome.set_result(True if new.id in created and new.id not in seen else None)
            seen.add(new.id)
