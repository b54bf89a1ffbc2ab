"""The consumer: runs jobs from ``tasks`` through the ``workers`` group and reports on ``results``.

An entry stays in the group's pending list (PEL) from XREADGROUP until its final result and its
XACK are written in one MULTI/EXEC (see ``ResultWriter``). Beside the jobs, three loops run:

- read: XREADGROUP for at most as many entries as there are free slots, so that no more than
  ``worker_concurrency`` jobs are ever in flight; under fair scheduling, for a batch whatever
  the free slots, each entry parked in its user's waiting list at once;
- reclaim: XAUTOCLAIM takes over entries idle longer than the visibility timeout, i.e. entries
  whose consumer died, and runs them like new ones (``_reclaim``);
- heartbeat: see ``Runner._heartbeat_loop``; it also renews the leases of the calls in flight on
  models' deployments (``providers.routing``);
- limits: takes parked jobs (an integration's, or every job under fair scheduling) once they
  may run (``_limits``, ``_intake``).
"""

import asyncio
import os
import socket

from redis.asyncio import Redis
from redis.exceptions import RedisError
from redis.typing import StreamIdT

from libs.blobs import BlobStore, open_store
from libs.contracts import RESULTS_GROUP, RESULTS_STREAM, TASKS_GROUP, TASKS_STREAM
from libs.logs import get_logger
from libs.loops import cancel_and_wait
from libs.streams import ensure_group, entries_of
from services.worker._backoff import Backoff, describe, is_nogroup
from services.worker._cancel import Cancellations
from services.worker._chunks import ChunkPublisher
from services.worker._dead_letters import QUARANTINE_FROM
from services.worker._entries import Fields
from services.worker._execute import DeploymentParams, HandlerParams, JobExecutor
from services.worker._intake import LeasedJobs, ParkedIntake, park_entries
from services.worker._limits import Limiter
from services.worker._quarantine import Quarantine
from services.worker._reclaim import Reclaimer
from services.worker._slots import Slots
from services.worker._writer import ResultWriter
from services.worker.providers.routing import Routes
from services.worker.registry import HandlerRegistry
from services.worker.settings import WorkerSettings

log = get_logger(__name__)

_FINAL_FLUSH_TIMEOUT_S = 10.0
_CLAIM_CHUNK = 1000


def default_consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class Runner:
    """One worker process's consumer. ``await run()`` until ``stop()``; then it drains and returns.

    The Redis client belongs to the caller, who closes it after ``run`` returns.
    """

    def __init__(
        self,
        redis: Redis,
        registry: HandlerRegistry,
        settings: WorkerSettings,
        *,
        consumer: str | None = None,
        handler_params: HandlerParams | None = None,
        deployment_params: DeploymentParams | None = None,
        blobs: BlobStore | None = None,
    ) -> None:
        self.redis = redis
        self.blobs = blobs or open_store(settings.blob_url)  # input files and file results
        self.registry = registry
        self.settings = settings
        self.consumer = consumer or settings.worker_name or default_consumer_name()
        self._visibility_ms = max(1, int(settings.worker_visibility_timeout_s * 1000))
        self._slots = Slots(settings.worker_concurrency)
        self._stopping = asyncio.Event()
        self._ready = asyncio.Event()
        self._jobs: dict[asyncio.Task[None], bytes | None] = {}
        self._owned: set[bytes] = set()
        """Entries this process holds in the PEL: read or claimed, not yet acked."""
        self._writer = ResultWriter(
            redis, on_acked=self._owned.difference_update, on_nogroup=self._ensure_groups
        )
        self.cancels = Cancellations(redis)
        self.limiter = Limiter(
            redis,
            lease_ttl_s=settings.worker_visibility_timeout_s,
            on_parked=self._owned.difference_update,
            quarantine_after=QUARANTINE_FROM - 1,
            max_running_per_user=settings.worker_max_running_per_user,
        )
        self.routes = Routes(redis, lease_s=settings.worker_visibility_timeout_s)
        self._executor = JobExecutor(
            registry,
            self._writer,
            consumer=self.consumer,
            timeout_s=settings.worker_job_timeout_s,
            handler_params=handler_params,
            chunks=ChunkPublisher(redis),
            cancels=self.cancels,
            limiter=self.limiter,
            blobs=self.blobs,
            max_result_bytes=settings.worker_max_result_bytes,
            fair=settings.worker_scheduling == "fair",
            routes=self.routes,
            deployment_params=deployment_params,
        )
        self._quarantine = Quarantine(
            redis,
            self._writer,
            consumer=self.consumer,
            max_crashes=settings.worker_max_crashes,
            start=self._start,
            leave=self._leave,
        )
        self._leased = LeasedJobs(
            self._executor,
            self._writer,
            self._slots,
            consumer=self.consumer,
            max_crashes=settings.worker_max_crashes,
            track=self._track,
        )
        self._parked_intake = ParkedIntake(
            self.limiter, self._slots, self._leased.start, tier_weights=settings.worker_tier_weights
        )
        self._reclaimer = Reclaimer(
            redis,
            self.consumer,
            self._slots,
            self._owned,
            self._quarantine,
            self._start,
            batch=settings.worker_batch,
            visibility_ms=self._visibility_ms,
        )
        # The reader holds every free slot while it blocks, so reading and reclaiming take
        # turns: a reclaim pass waits (at most one block) for the read in progress to return.
        self._intake = asyncio.Lock()

    @property
    def in_flight(self) -> int:
        """Jobs running now."""
        return len(self._jobs)

    async def wait_ready(self) -> None:
        """Return once the groups exist and the runner is reading."""
        await self._ready.wait()

    def stop(self) -> None:
        """Stop reading and reclaiming; ``run`` then drains in-flight jobs and returns.

        Safe to call from a signal handler, and more than once.
        """
        if not self._stopping.is_set():
            log.info("worker.stopping", consumer=self.consumer, in_flight=self.in_flight)
        self._stopping.set()
        self._slots.wake()
        self._parked_intake.notify()

    async def run(self) -> None:
        log.info(
            "worker.starting",
            consumer=self.consumer,
            concurrency=self.settings.worker_concurrency,
            handlers=list(self.registry),
            blobs=self.blobs.url,
        )
        if not await self._ensure_groups_until_up():
            return
        writer = asyncio.create_task(self._writer.run(), name="worker-writer")
        heartbeat = asyncio.create_task(self._heartbeat_loop(), name="worker-heartbeat")
        loops = [
            asyncio.create_task(self._read_loop(), name="worker-read"),
            asyncio.create_task(self._reclaim_loop(), name="worker-reclaim"),
            asyncio.create_task(self._quarantine.run(self._stopping), name="worker-quarantine"),
            asyncio.create_task(
                self._parked_intake.run(
                    self._stopping, poll_s=self.settings.worker_limits_poll_s, recover=self._recover
                ),
                name="worker-limits",
            ),
        ]
        cancels = asyncio.create_task(self.cancels.run(), name="worker-cancels")
        self._ready.set()
        try:
            await self._stopping.wait()
            # A read blocked on a server that stopped answering is abandoned: whatever it was
            # delivered stays pending and is reclaimed elsewhere.
            _, stuck = await asyncio.wait(loops, timeout=self.settings.worker_block_ms / 1000 + 1)
            for task in stuck:
                task.cancel()
            await self._drain()
        finally:
            for task in loops:
                task.cancel()
            await self._finish(writer, heartbeat)
            await cancel_and_wait([cancels])
        log.info("worker.stopped", consumer=self.consumer)

    async def _drain(self) -> None:
        if not self._jobs:
            return
        log.info("worker.draining", in_flight=len(self._jobs))
        _, unfinished = await asyncio.wait(
            list(self._jobs), timeout=self.settings.worker_drain_timeout_s
        )
        if not unfinished:
            return
        ids = [i for task in unfinished if (i := self._jobs.get(task)) is not None]
        await cancel_and_wait(unfinished)
        self._owned.difference_update(ids)
        log.warning("worker.drain_timeout", left_pending=len(ids))
        await self._release(ids)

    async def _release(self, ids: list[bytes]) -> None:
        """Age unfinished entries to the visibility timeout so the next reclaim takes them."""
        try:
            await self._claim_own(ids, idle_ms=self._visibility_ms)
        except (RedisError, OSError) as exc:
            log.warning("worker.release_failed", error=describe(exc))

    async def _claim_own(self, ids: list[bytes], *, idle_ms: int = 0) -> None:
        """``XCLAIM ... JUSTID`` this consumer's entries, setting their idle time to ``idle_ms``."""
        pipe = self.redis.pipeline(transaction=False)
        for i in range(0, len(ids), _CLAIM_CHUNK):
            chunk: list[StreamIdT] = list(ids[i : i + _CLAIM_CHUNK])
            pipe.xclaim(
                TASKS_STREAM, TASKS_GROUP, self.consumer, 0, chunk, idle=idle_ms, justid=True
            )
        await pipe.execute()

    async def _finish(self, writer: "asyncio.Task[None]", heartbeat: "asyncio.Task[None]") -> None:
        for task in list(self._jobs):
            task.cancel()
        self._writer.close()
        try:
            await asyncio.wait_for(writer, _FINAL_FLUSH_TIMEOUT_S)
        except TimeoutError:
            log.error("worker.flush_timeout", unwritten=len(self._writer))
        finally:
            await cancel_and_wait([heartbeat])

    async def _ensure_groups(self) -> None:
        await ensure_group(self.redis, TASKS_STREAM, TASKS_GROUP)
        await ensure_group(self.redis, RESULTS_STREAM, RESULTS_GROUP)

    async def _ensure_groups_until_up(self) -> bool:
        backoff = Backoff()
        while not self._stopping.is_set():
            try:
                await self._ensure_groups()
                return True
            except (RedisError, OSError) as exc:
                log.warning("worker.redis_unavailable", error=describe(exc))
                await backoff.sleep(self._stopping)
        return False

    async def _recover(self, where: str, exc: Exception, backoff: Backoff) -> None:
        """Whatever went wrong, the loop goes on: a lost group is recreated, anything else waits."""
        if is_nogroup(exc):
            log.warning("worker.group_missing", where=where)
            try:
                await self._ensure_groups()
                return
            except (RedisError, OSError) as again:
                exc = again
        if isinstance(exc, RedisError | OSError):
            log.warning("worker.redis_error", where=where, error=describe(exc))
        else:
            log.exception("worker.loop_error", where=where)
        await backoff.sleep(self._stopping)

    async def _read_loop(self) -> None:
        backoff = Backoff()
        fair = self.settings.worker_scheduling == "fair"
        while not self._stopping.is_set():
            if not fair:
                await self._slots.wait_free(self._stopping)
            try:
                async with self._intake:
                    await (self._read_to_park() if fair else self._read())
            except Exception as exc:
                await self._recover("read", exc, backoff)
            else:
                backoff.reset()

    async def _read(self) -> None:
        count = 0 if self._stopping.is_set() else self._slots.take(self.settings.worker_batch)
        if not count:
            return
        block = self.settings.worker_block_ms
        if self._parked_intake.wanting:  # parked jobs wait for slots this read would hold
            block = min(block, max(1, int(self.settings.worker_limits_poll_s * 1000)))
        try:
            reply = await self.redis.xreadgroup(
                TASKS_GROUP,
                self.consumer,
                {TASKS_STREAM: ">"},
                count=count,
                block=block,
            )
            entries = entries_of(reply)
        except BaseException:
            self._slots.release(count)
            raise
        self._slots.release(count - len(entries))
        for entry_id, fields in entries:
            self._start(entry_id, fields)
        # Let whoever waits for the slots just released (the parked jobs' intake) have a turn.
        await asyncio.sleep(0)

    async def _read_to_park(self) -> None:
        """Fair scheduling: move what the stream holds to its users' waiting lists, holding no
        slot (parking runs nothing), whatever this process is running; the parked intake then
        takes the users' jobs in turn."""
        if self._stopping.is_set():
            return
        reply = await self.redis.xreadgroup(
            TASKS_GROUP,
            self.consumer,
            {TASKS_STREAM: ">"},
            count=self.settings.worker_batch,
            block=self.settings.worker_block_ms,
        )
        entries = entries_of(reply)
        if entries:
            await park_entries(self._executor, entries, self._owned)
            self._parked_intake.notify()

    async def _reclaim_loop(self) -> None:
        backoff = Backoff()
        interval = self.settings.worker_reclaim_interval_s
        while not self._stopping.is_set():
            try:
                await asyncio.wait_for(self._stopping.wait(), interval)
                return
            except TimeoutError:
                pass
            try:
                async with self._intake:
                    await self._reclaimer.run(self._stopping)
            except Exception as exc:
                await self._recover("reclaim", exc, backoff)
            else:
                backoff.reset()

    async def _heartbeat_loop(self) -> None:
        """Keep this live worker's pending entries from being reclaimed by another consumer.

        Reclaim takes any entry idle longer than the visibility timeout, and a job may well run
        longer than that. So every visibility timeout / 3, ``XCLAIM tasks workers <me> 0
        <my in-flight ids> JUSTID`` resets the idle time of every entry this process holds (JUSTID
        leaves the delivery count alone). Only a worker that stops beating (dead, or its loop
        stalled past the timeout) loses its entries; a stalled one may then claim them back, and
        the job runs twice, which at-least-once delivery allows.
        """
        interval = self.settings.worker_visibility_timeout_s / 3
        while True:
            await asyncio.sleep(interval)
            try:
                await self.limiter.renew(self._leased.leases())
                await self.routes.renew()
            except Exception as exc:
                log.warning("worker.lease_renewal_failed", error=describe(exc))
            ids = list(self._owned)
            if not ids:
                continue
            try:
                await self._claim_own(ids)
            except Exception as exc:
                log.warning("worker.heartbeat_failed", error=describe(exc))
                if is_nogroup(exc):
                    await self._recover("heartbeat", exc, Backoff())

    def _start(self, entry_id: bytes, fields: Fields | None) -> "asyncio.Task[None]":
        """Run one entry; its slot was taken by the caller and is given back when the job ends."""
        self._owned.add(entry_id)
        task = asyncio.create_task(self._executor.run(entry_id, fields))
        self._jobs[task] = entry_id
        task.add_done_callback(self._job_done)
        return task

    def _leave(self, entry_id: bytes) -> None:
        """Give up an entry without running it: it stays pending, for a later reclaim."""
        self._owned.discard(entry_id)
        self._slots.release()

    def _track(self, task: "asyncio.Task[None]") -> None:
        """Follow a parked job started under its lease; its slot was taken by the caller."""
        self._jobs[task] = None
        task.add_done_callback(self._job_done)

    def _job_done(self, task: "asyncio.Task[None]") -> None:
        entry_id = self._jobs.pop(task, None)
        self._slots.release()
        if task.cancelled():
            return
        if (exc := task.exception()) is not None and entry_id is not None:
            # Not acked and no longer beaten: another consumer's reclaim retries it.
            self._owned.discard(entry_id)
            log.error("job.crashed", entry_id=entry_id.decode(), exc_info=exc)
