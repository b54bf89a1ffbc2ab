"""Parked jobs (fair scheduling, or an integration's limits; see ``_limits``): taken while this
process has free slots, and run under their leases, those whose leases expired before in
quarantine, one at a time (see ``_dead_letters``)."""

from __future__ import annotations

import asyncio
import bisect
from collections.abc import Awaitable, Callable, Mapping, Sequence

from libs.contracts.limits import QUEUE_TIERS, tier_queue
from libs.contracts.tiers import Tier
from libs.logs import get_logger
from services.worker._backoff import Backoff
from services.worker._dead_letters import QUARANTINE_FROM, retire_leased
from services.worker._entries import Fields
from services.worker._execute import JobExecutor
from services.worker._limits import Lease, Limiter, Taken
from services.worker._slots import Slots
from services.worker._stride import Stride
from services.worker._writer import ResultWriter

log = get_logger(__name__)

_TAKE_MOST = 100
"""Most jobs one worker takes in one turn (from an integration, or shared between the tiers)."""

_TIERS_TURN = ""
"""The turn of the tiers' queues in a round, beside the integrations' (named so as to sort
first, as their ``@`` names did)."""

Recover = Callable[[str, Exception, Backoff], Awaitable[None]]
"""The runner's recovery from a failed loop pass (logs, backs off, recreates groups)."""


async def park_entries(
    executor: JobExecutor, entries: Sequence[tuple[bytes, Fields | None]], owned: set[bytes]
) -> None:
    """Park the entries just read (fair scheduling: ``executor`` parks every job), each held in
    ``owned`` until its park acks it. If any park failed, the entries it left are given up
    (pending, for a reclaim to park once they are idle) and the first error is raised."""
    owned.update(entry_id for entry_id, _ in entries)
    parked = await asyncio.gather(
        *(executor.run(entry_id, fields) for entry_id, fields in entries),
        return_exceptions=True,
    )
    failed = [e for (e, _), done in zip(entries, parked, strict=True) if done is not None]
    if failed:
        owned.difference_update(failed)
        error = next(done for done in parked if done is not None)
        raise error if isinstance(error, Exception) else RuntimeError(str(error))


class ParkedIntake:
    """Takes parked jobs while this process has free slots. A round gives a turn to each queue
    with jobs waiting: the tiers' queues one turn together, their slots shared out by weight
    (``_stride``), and each integration's one, starting where the last round ran out of slots
    so that none is starved. An integration over its budget is left alone until its window
    ends."""

    def __init__(
        self,
        limiter: Limiter,
        slots: Slots,
        start: Callable[[Taken], None],
        *,
        tier_weights: Mapping[Tier, int],
    ) -> None:
        self._limiter = limiter
        self._slots = slots
        self._start = start
        self._stride = Stride({tier_queue(tier): w for tier, w in tier_weights.items()})
        self._not_before: dict[str, float] = {}
        self._woken = asyncio.Event()
        self._active: list[str] = []
        """The queues with jobs waiting, as last read, until ``_active_until``."""
        self._active_until = 0.0
        self._active_for_s = 0.0
        self._resume = _TIERS_TURN
        """The turn the next round starts with: the first one the last round had no slot for."""

    def notify(self) -> None:
        """Jobs were parked (or the process stops): look at once rather than at the next poll."""
        self._active_until = 0.0
        self._woken.set()

    wanting: bool = False
    """Jobs were waiting when this process last had no slot for them: its reader then blocks
    briefly, so that slots come back to the parked jobs soon."""

    async def run(self, stopping: asyncio.Event, *, poll_s: float, recover: Recover) -> None:
        """Take parked jobs whenever this process has free slots, until ``stopping``. The
        queues with jobs waiting are read at most every ``poll_s`` (or when this process parks
        some): under load a round per finished job would read them each time."""
        self._active_for_s = poll_s
        backoff = Backoff()
        while not stopping.is_set():
            await self._slots.wait_free(stopping)
            self._woken.clear()
            try:
                taken = await self.take(stopping)
            except Exception as exc:
                await recover("limits", exc, backoff)
                continue
            backoff.reset()
            if not taken and not stopping.is_set():
                try:
                    await asyncio.wait_for(self._woken.wait(), poll_s)
                except TimeoutError:
                    pass

    async def take(self, stopping: asyncio.Event) -> int:
        """One round over the queues with waiting jobs (up to ``_TAKE_MOST`` a turn); how many
        jobs were started.

        When jobs were left waiting for want of a slot, slots are taken before the first round
        trip: the stream reader, which holds every free slot while it blocks, would otherwise
        take them back meanwhile."""
        count = self._slots.take(_TAKE_MOST) if self.wanting else 0
        now = asyncio.get_running_loop().time()
        try:
            await self._read_active(now)
        except BaseException:
            self._slots.release(count)
            raise
        self.wanting = False
        taken = 0
        for turn in self._turns():
            if stopping.is_set():
                break
            if self._not_before.get(turn, 0) > now:
                continue
            count = count or self._slots.take(_TAKE_MOST)
            if not count:
                self.wanting = True
                self._resume = turn
                break
            if turn == _TIERS_TURN:
                started, count = await self._take_tiers(count)
            else:
                started, count = await self._take_integration(turn, count, now)
            taken += started
        self._slots.release(count)
        return taken

    def _turns(self) -> list[str]:
        """This round's turns, from ``_resume`` on (or the next one, if it is gone)."""
        turns = sorted({_TIERS_TURN if queue in QUEUE_TIERS else queue for queue in self._active})
        first = bisect.bisect_left(turns, self._resume)
        return turns[first:] + turns[:first]

    async def _take_tiers(self, count: int) -> tuple[int, int]:
        """Share ``count`` slots between the tiers' queues with jobs waiting, by stride; the jobs
        started and the slots left. A queue that gives fewer jobs than its share (it ran dry,
        or its users run their most) is left out for the rest of the round, and its unused
        share goes to the others."""
        waiting = [queue for queue in self._active if queue in QUEUE_TIERS]
        taken = 0
        while count and waiting:
            for queue, share in self._stride.plan(waiting, count):
                try:
                    got = await self._limiter.take(queue, share)
                except BaseException:
                    self._slots.release(count)
                    raise
                if isinstance(got, list):
                    self._stride.served(queue, len(got))
                    self._start_all(got)
                    taken += len(got)
                    count -= len(got)
                    if len(got) == share:
                        continue
                elif got is None:  # nothing waits there now: not until the next read
                    self._active.remove(queue)
                waiting.remove(queue)
        return taken, count

    async def _take_integration(self, integration: str, count: int, now: float) -> tuple[int, int]:
        """Up to ``count`` jobs of ``integration``: the jobs started and the slots left."""
        try:
            got = await self._limiter.take(integration, count)
        except BaseException:
            self._slots.release(count)
            raise
        if isinstance(got, list):
            self._start_all(got)
            return len(got), count - len(got)
        if got is None:  # nothing waits there now: not until the next read
            self._active.remove(integration)
        elif got:
            self._not_before[integration] = now + got
        return 0, count

    def _start_all(self, taken: list[Taken]) -> None:
        for one in taken:
            self._start(one)

    async def _read_active(self, now: float) -> None:
        if now >= self._active_until:
            self._active = await self._limiter.active()
            self._active_until = now + self._active_for_s


class LeasedJobs:
    """The parked jobs this process runs, each under its lease (renewed with the heartbeat)."""

    def __init__(
        self,
        executor: JobExecutor,
        writer: ResultWriter,
        slots: Slots,
        *,
        consumer: str,
        max_crashes: int,
        track: Callable[[asyncio.Task[None]], None],
    ) -> None:
        """``track`` follows every job started (its slot is given back when it ends)."""
        self._executor = executor
        self._writer = writer
        self._slots = slots
        self._consumer = consumer
        self._max_crashes = max_crashes
        self._track = track
        self._leases: dict[asyncio.Task[None], Lease] = {}
        self._quarantined = asyncio.Lock()
        """Held by the job this process runs in quarantine."""

    def leases(self) -> list[Lease]:
        return list(self._leases.values())

    def start(self, taken: Taken) -> None:
        """Run a parked job under its lease; its slot was taken by the caller. One whose leases
        expired before runs in quarantine, or is dead-lettered once it took its workers down
        ``max_crashes`` times there. A job that crashes leaves its lease to expire: it then
        waits again."""
        if taken.crashes >= self._max_crashes:
            retire_leased(self._writer, consumer=self._consumer, taken=taken)
            self._slots.release()
            return
        if taken.expired >= QUARANTINE_FROM - 1:
            job = self._alone(taken)
        else:
            job = self._executor.run_leased(taken)
        task = asyncio.create_task(job)
        self._leases[task] = taken.lease
        task.add_done_callback(self._done)
        self._track(task)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._leases.pop(task, None)

    async def _alone(self, taken: Taken) -> None:
        async with self._quarantined:
            log.warning("task.quarantined", lease=taken.lease.id, expired=taken.expired)
            await self._executor.run_leased(taken)
