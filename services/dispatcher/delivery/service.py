"""The dispatch loop: claim due deliveries, send them (a bounded number at once), record each
attempt and its outcome.

A delivery is claimed under ``FOR UPDATE SKIP LOCKED`` and leased (``locked_until``) for
``RELAI_WEBHOOK_LEASE_S``, longer than an attempt may take, so that several dispatchers never
send one delivery at the same time; its attempt number is counted at the claim and fences the
outcome: a dispatcher whose lease ran out (a long pause) records its attempt but changes nothing
else, since another attempt has been claimed meanwhile. A dispatcher that dies leaves its leases
to run out: another takes the deliveries over then, with the same id and body (at least once).

It wakes when deliveries are written (``LISTEN relai_webhooks``, on a connection of its own that
comes back when it drops), when a scheduled retry falls due, when a slot frees while work waits,
and every ``RELAI_DISPATCHER_POLL_S`` regardless.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from libs.contracts.webhooks import WEBHOOKS_CHANNEL, webhook_id
from libs.db import DATABASE_ERRORS, PgConnection, PgPool, listen_forever
from libs.logs import bind_request, get_logger
from libs.loops import cancel_and_wait
from libs.webhooks import RetryPolicy
from services.dispatcher import metrics
from services.dispatcher.delivery import repository
from services.dispatcher.delivery.schemas import Attempt, Claimed, Recorded
from services.dispatcher.delivery.sender import Sender

log = get_logger(__name__)

MIN_PAUSE_S = 0.05
"""Shortest wait between two claims that found due rows locked by another dispatcher."""


@dataclass(slots=True)
class DispatchReport:
    """What this process has done since it started (``/health`` shows it)."""

    listening: bool = False
    in_flight: int = 0
    delivered: int = 0
    retried: int = 0
    failed: int = 0
    endpoints_disabled: int = 0
    stale: int = 0
    last_error: str | None = None


@dataclass(slots=True)
class _Turn:
    """The deliveries of one endpoint waiting to record their attempt in this process."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    waiting: int = 0


class Dispatcher:
    def __init__(
        self,
        pool: PgPool,
        sender: Sender,
        *,
        database_url: str,
        policy: RetryPolicy,
        concurrency: int,
        lease_s: float,
        poll_s: float,
        disable_after_s: float,
    ) -> None:
        self._pool = pool
        self._sender = sender
        self._database_url = database_url
        self._policy = policy
        self._concurrency = concurrency
        self._lease_s = lease_s
        self._poll_s = poll_s
        self._disable_after_s = disable_after_s
        self._wake = asyncio.Event()
        self._in_flight: set[asyncio.Task[None]] = set()
        self._turns: dict[uuid.UUID, _Turn] = {}
        self.report = DispatchReport()

    async def run(self) -> None:
        """Dispatch until cancelled; deliveries in flight then are left to ``drain``."""
        listener = asyncio.create_task(self._listen(), name="dispatcher-listener")
        try:
            while True:
                self._wake.clear()
                try:
                    pause = await self.turn()
                except Exception as exc:
                    if isinstance(exc, DATABASE_ERRORS):
                        log.warning("dispatcher.claim_failed", error=repr(exc))
                    else:
                        log.exception("dispatcher.claim_failed")
                    self.report.last_error = f"claim: {type(exc).__name__}"
                    pause = min(self._poll_s, 1.0)
                if pause > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), timeout=pause)
        finally:
            await cancel_and_wait([listener])

    async def turn(self) -> float:
        """Claim what is due, as far as free slots allow, and start sending it; returns how long
        to wait before the next turn (unless woken sooner)."""
        free = self._concurrency - len(self._in_flight)
        if free <= 0:
            return self._poll_s  # a delivery that ends wakes the loop
        async with self._pool.acquire() as conn:
            claimed, stopped = await repository.claim(conn, limit=free, lease_s=self._lease_s)
            full = len(claimed) + stopped == free
            next_due = None if full else await repository.seconds_to_next_due(conn)
        if stopped:
            metrics.FAILED.inc(stopped)
            self.report.failed += stopped
            log.info("webhook.endpoint_disabled_failed", deliveries=stopped)
        for delivery in claimed:
            self._start(delivery)
        if full:
            return 0.0
        if next_due is None:
            return self._poll_s
        return min(max(next_due, MIN_PAUSE_S), self._poll_s)

    def _start(self, delivery: Claimed) -> None:
        task = asyncio.create_task(self._deliver(delivery), name=f"webhook-{delivery.id}")
        self._in_flight.add(task)
        self.report.in_flight = len(self._in_flight)
        metrics.IN_FLIGHT.set(len(self._in_flight))
        task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[None]) -> None:
        was_full = len(self._in_flight) >= self._concurrency
        self._in_flight.discard(task)
        self.report.in_flight = len(self._in_flight)
        metrics.IN_FLIGHT.set(len(self._in_flight))
        if was_full:
            self._wake.set()

    async def drain(self, timeout_s: float) -> None:
        """Let the deliveries in flight end for up to ``timeout_s``, then cancel the rest (their
        leases run out and another dispatcher, or this one restarted, sends them again)."""
        if self._in_flight:
            await asyncio.wait(set(self._in_flight), timeout=timeout_s)
        await cancel_and_wait(list(self._in_flight))

    async def _deliver(self, delivery: Claimed) -> None:
        with _bound(delivery):
            try:
                attempt = await self._sender.send(delivery)
                metrics.ATTEMPT_SECONDS.observe(attempt.latency_s)
                recorded = await self._record(delivery, attempt)
                self._count(delivery, attempt, recorded)
                if recorded.retry_in_s is not None:  # be there when it falls due
                    asyncio.get_running_loop().call_later(recorded.retry_in_s, self._wake.set)
            except DATABASE_ERRORS as exc:
                # Its lease runs out and it is sent again, with the same id.
                log.warning(
                    "webhook.record_failed",
                    error=repr(exc),
                    webhook_id=webhook_id(delivery.id),
                    attempt=delivery.attempt,
                )
                self.report.last_error = f"record: {type(exc).__name__}"
            except Exception:
                log.exception("webhook.delivery_crashed", webhook_id=webhook_id(delivery.id))
                self.report.last_error = "unexpected error (see the log)"

    async def _record(self, delivery: Claimed, attempt: Attempt) -> Recorded:
        async with (
            self._endpoint_turn(delivery.endpoint_id),
            self._pool.acquire() as conn,
            conn.transaction(),
        ):
            return await record(
                conn,
                delivery,
                attempt,
                policy=self._policy,
                disable_after_s=self._disable_after_s,
            )

    @contextlib.asynccontextmanager
    async def _endpoint_turn(self, endpoint_id: uuid.UUID | None) -> AsyncIterator[None]:
        """One recording at a time per endpoint in this process, before it takes a connection.
        Recording locks the endpoint's row (``repository.lock``), so the deliveries of one
        endpoint record one after another anyway: without this, each would hold a connection
        while it waits for the row, up to the whole pool (and, through PgBouncer, that many of
        its server connections, which every process shares) for one busy endpoint."""
        if endpoint_id is None:
            yield
            return
        turn = self._turns.get(endpoint_id)
        if turn is None:
            turn = self._turns[endpoint_id] = _Turn()
        turn.waiting += 1
        try:
            async with turn.lock:
                yield
        finally:
            turn.waiting -= 1
            if not turn.waiting:
                del self._turns[endpoint_id]

    def _count(self, delivery: Claimed, attempt: Attempt, recorded: Recorded) -> None:
        fields: dict[str, Any] = {
            "webhook_id": webhook_id(delivery.id),
            "webhook_event": delivery.event,
            "attempt": delivery.attempt,
            "status_code": attempt.status_code,
            "latency_ms": round(attempt.latency_s * 1000, 1),
        }
        if attempt.error:
            fields["error"] = attempt.error
        outcome = recorded.outcome
        if outcome == "delivered":
            metrics.DELIVERED.inc()
            self.report.delivered += 1
            log.info("webhook.delivered", **fields)
        elif outcome == "retry":
            metrics.RETRY.inc()
            self.report.retried += 1
            log.info("webhook.retry", **fields)
        elif outcome == "failed":
            metrics.FAILED.inc()
            self.report.failed += 1
            log.warning("webhook.failed", **fields)
        else:
            self.report.stale += 1
            log.info(f"webhook.{outcome}", **fields)
        if recorded.stopped:
            metrics.FAILED.inc(recorded.stopped)
            self.report.failed += recorded.stopped
        if recorded.endpoint_disabled:
            metrics.ENDPOINTS_DISABLED.inc()
            self.report.endpoints_disabled += 1
            log.warning(
                "webhook.endpoint_disabled",
                endpoint_id=str(delivery.endpoint_id),
                pending_failed=recorded.stopped,
            )

    async def _listen(self) -> None:
        """Wake at every notification, and whenever listening (re)starts: what was written while
        it was not listening is due too."""

        def listening(now: bool) -> None:
            self.report.listening = now
            if now:
                self._wake.set()

        await listen_forever(
            self._database_url,
            WEBHOOKS_CHANNEL,
            lambda _payload: self._wake.set(),
            reconnect_s=self._poll_s,
            name="dispatcher",
            on_listening=listening,
        )


def _bound(delivery: Claimed) -> AbstractContextManager[None]:
    if delivery.request_id is not None:
        return bind_request(delivery.request_id)
    return contextlib.nullcontext()


async def record(
    conn: PgConnection,
    delivery: Claimed,
    attempt: Attempt,
    *,
    policy: RetryPolicy,
    disable_after_s: float,
) -> Recorded:
    """Record ``attempt`` and what follows from it, in the caller's transaction: delivered (a
    2xx), tried again later (by ``policy``, honouring ``Retry-After``) or given up, and the
    endpoint's health, which may disable it."""
    locked = await repository.lock(conn, delivery)
    if locked is None:
        return Recorded("gone")
    await repository.insert_attempt(conn, delivery, attempt)
    if locked.attempts != delivery.attempt or (locked.status != "pending" and not attempt.ok):
        return Recorded("stale")
    if attempt.ok:
        assert attempt.status_code is not None
        await repository.mark_delivered(conn, delivery.id, attempt.status_code)
        if delivery.endpoint_id is not None:
            await repository.endpoint_succeeded(conn, delivery.endpoint_id)
        return Recorded("delivered")
    delay = policy.delay(locked.round, retry_after_s=attempt.retry_after_s)
    retry_in = None if policy.gives_up(locked.elapsed_s, delay) else delay
    await repository.mark_not_delivered(conn, delivery.id, attempt, retry_in_s=retry_in)
    outcome = Recorded("retry", retry_in_s=retry_in) if retry_in is not None else Recorded("failed")
    if delivery.endpoint_id is None:
        return outcome
    enabled, failing_for = await repository.endpoint_failed(conn, delivery.endpoint_id)
    gone = attempt.status_code == 410
    if not enabled or not (gone or failing_for >= disable_after_s):
        return outcome
    reason = (
        "the endpoint answered 410 Gone"
        if gone
        else f"no successful delivery for {failing_for:.0f}s (last: {attempt.error})"
    )
    stopped = await repository.disable_endpoint(conn, delivery.endpoint_id, reason=reason)
    if stopped < 0:
        return outcome
    if outcome.outcome == "retry":  # this one was pending, and is failed with the rest
        stopped -= 1
    return Recorded("failed", endpoint_disabled=True, stopped=stopped)
