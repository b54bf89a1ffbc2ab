"""Load, quiescence and the figures of one chaos scenario.

Clients behave as a careful client should: a submission that gets no answer, a connection error
or a 503 is sent again with the same inputs (the request id is derived from them, so a retry can
never create a second request). A 500 is a defect and is counted as such.

The user has a webhook endpoint on a local receiver that verifies every delivery: once the
requests have ended, each one's final event must arrive there too (``webhooks_missing``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
from redis.asyncio import Redis

from libs.contracts import TASKS_GROUP, TASKS_STREAM
from tests.integration.dispatcher.receiver import Receiver

HEADER = (
    "scenario submitted accepted completed failed lost duplicate_deliveries double_charged "
    "recovery_s webhooks_missing"
)
RETRY_FOR_S = 90.0
MAX_CONNECTIONS = 200
"""A steady load's connections to the API at most."""
HOOKS_WITHIN_S = 60.0
"""How long after the last request ends its webhook events may still be arriving."""


@dataclass
class Load:
    """``n`` distinct submissions to ``path``, ``concurrency`` at a time, each retried until
    accepted or refused for good."""

    url: str
    api_key: str
    path: str
    n: int
    concurrency: int = 20
    prefix: str = "chaos"
    """The inputs' text is ``<prefix> <number>``: another prefix, other requests."""
    accepted: set[uuid.UUID] = field(default_factory=set)
    refused: Counter[int] = field(default_factory=Counter)
    unavailable: int = 0
    """503 answers (Postgres down): expected during an outage, then retried."""
    server_errors: int = 0
    """5xx other than 503: never expected."""
    sent: int = 0
    done: bool = False
    """Set once every submission was accepted or refused for good."""
    slots: asyncio.Semaphore | None = None
    """At most this many requests in the HTTP client at once (the others wait their turn
    here): httpx's pool looks at every request it queues each time a connection frees, so a
    queue of thousands would spend the test's CPU there, not in the system under test."""

    async def run(self) -> None:
        try:
            await self._run()
        finally:
            self.done = True

    async def _run(self) -> None:
        headers = {"Authorization": f"Bearer {self.api_key}"}
        inputs = iter(range(self.n))
        async with httpx.AsyncClient(base_url=self.url, headers=headers, timeout=10) as client:

            async def submitter() -> None:
                for number in inputs:
                    self.sent += 1
                    await self._submit(client, {"text": f"{self.prefix} {number}"})

            await asyncio.gather(*(submitter() for _ in range(self.concurrency)))

    async def _submit(self, client: httpx.AsyncClient, body: dict[str, Any]) -> None:
        deadline = time.monotonic() + RETRY_FOR_S
        while time.monotonic() < deadline:
            try:
                async with self.slots or contextlib.nullcontext():
                    response = await client.post(self.path, json=body)
            except httpx.TransportError:
                await asyncio.sleep(0.2)
                continue
            if response.status_code in (200, 202):
                self.accepted.add(uuid.UUID(response.json()["id"]))
                return
            if response.status_code == 503:
                self.unavailable += 1
            elif response.status_code >= 500:
                self.server_errors += 1
            else:
                self.refused[response.status_code] += 1
                return
            await asyncio.sleep(0.2)
        self.refused[0] += 1

    async def until_accepted(self, count: int) -> None:
        while len(self.accepted) < count:
            await asyncio.sleep(0.02)


@dataclass
class SteadyLoad(Load):
    """An offered load: ``rate`` submissions a second, on schedule whatever the answers (each
    retried on its own until accepted), for ``n / rate`` seconds."""

    rate: float = 20.0

    async def _run(self) -> None:
        headers = {"Authorization": f"Bearer {self.api_key}"}
        limits = httpx.Limits(max_connections=MAX_CONNECTIONS, max_keepalive_connections=50)
        self.slots = asyncio.Semaphore(MAX_CONNECTIONS)
        async with httpx.AsyncClient(
            base_url=self.url, headers=headers, timeout=10, limits=limits
        ) as client:
            started = time.monotonic()
            submissions: list[asyncio.Task[None]] = []
            for number in range(self.n):
                wait = started + number / self.rate - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                self.sent += 1
                body = {"text": f"{self.prefix} {number}"}
                submissions.append(asyncio.create_task(self._submit(client, body)))
            await asyncio.gather(*submissions)


@dataclass
class Figures:
    scenario: str
    submitted: int
    accepted: int
    completed: int
    failed: int
    lost: int
    duplicate_deliveries: int
    double_charged: int
    recovery_s: float
    webhooks_missing: int
    """Requests that ended without their final event reaching the receiver, verified."""

    def line(self) -> str:
        return (
            f"{self.scenario} {self.submitted} {self.accepted} {self.completed} {self.failed} "
            f"{self.lost} {self.duplicate_deliveries} {self.double_charged} {self.recovery_s:.1f} "
            f"{self.webhooks_missing}"
        )


Fault = Callable[["Scenario"], Awaitable[None]]


@dataclass
class Scenario:
    """One run: load and a fault side by side, then quiescence and the figures."""

    name: str
    load: Load
    pool: asyncpg.Pool[Any]
    redis: Redis
    user_id: uuid.UUID
    worker_logs: list[Path]
    receiver: Receiver
    """The user's webhook endpoint: every request's final event must reach it."""
    injected_at: float | None = None
    started_at: float | None = None
    quiet_at: float | None = None
    """When the load started, and when every accepted request had ended."""
    extra: dict[str, Any] = field(default_factory=dict)
    """What a fault leaves for the scenario's own checks."""

    def injected(self) -> None:
        self.injected_at = time.monotonic()

    async def until_holding(self, pid: int, *, at_least: int = 1) -> None:
        """Until the worker process ``pid`` holds ``at_least`` unacknowledged jobs."""
        suffix = f"-{pid}"
        while True:
            try:
                consumers = await self.redis.xinfo_consumers(TASKS_STREAM, TASKS_GROUP)
            except Exception:
                consumers = []
            held = sum(c["pending"] for c in consumers if c["name"].decode().endswith(suffix))
            if held >= at_least:
                return
            await asyncio.sleep(0.02)

    async def run(self, fault: Fault, *, quiet_within_s: float) -> Figures:
        self.started_at = started = time.monotonic()
        await asyncio.gather(self.load.run(), fault(self))
        ids = sorted(self.load.accepted)
        final = await self._until_quiet(ids, timeout=quiet_within_s)
        self.quiet_at = time.monotonic()
        recovery_s = self.quiet_at - (self.injected_at or started)
        missing = await self._until_hooks_arrived(ids, timeout=HOOKS_WITHIN_S)
        return await self._figures(ids, final, recovery_s, missing)

    def throughput(self) -> float:
        """Requests ended a second, from the load's start until every one had ended."""
        assert self.started_at is not None
        assert self.quiet_at is not None
        return len(self.load.accepted) / (self.quiet_at - self.started_at)

    async def _until_quiet(self, ids: list[uuid.UUID], *, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while True:
            final: int = await self.pool.fetchval(
                "SELECT count(*) FROM requests WHERE id = ANY($1) "
                "AND status NOT IN ('pending', 'running')",
                ids,
            )
            if final == len(ids) or time.monotonic() > deadline:
                return final
            await asyncio.sleep(0.25)

    async def _until_hooks_arrived(self, ids: list[uuid.UUID], *, timeout: float) -> int:
        """How many of ``ids`` still have no verified final event at the receiver after at most
        ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            missing = {str(i) for i in ids} - self.ended_by_hook()
            if not missing or time.monotonic() > deadline:
                return len(missing)
            await asyncio.sleep(0.25)

    def ended_by_hook(self) -> set[str]:
        """Requests whose final event the receiver got and verified."""
        ended: set[str] = set()
        for got in self.receiver.received:
            if got.verified:
                event = orjson.loads(got.body)
                if event["type"].startswith("request."):
                    ended.add(event["data"]["id"])
        return ended

    async def _figures(
        self, ids: list[uuid.UUID], final: int, recovery_s: float, webhooks_missing: int
    ) -> Figures:
        statuses = Counter(
            {
                r["status"]: r["n"]
                for r in await self.pool.fetch(
                    "SELECT status, count(*) AS n FROM requests WHERE id = ANY($1) GROUP BY 1",
                    ids,
                )
            }
        )
        double_charged: int = await self.pool.fetchval(_DOUBLE_CHARGED, ids)
        return Figures(
            scenario=self.name,
            submitted=self.load.n,
            accepted=len(ids),
            completed=statuses["succeeded"],
            failed=statuses["failed"],
            lost=len(ids) - final,
            duplicate_deliveries=self._duplicate_deliveries(set(ids)),
            double_charged=double_charged,
            recovery_s=recovery_s,
            webhooks_missing=webhooks_missing,
        )

    def _duplicate_deliveries(self, ids: set[uuid.UUID]) -> int:
        """Executions beyond the first, per request, from the workers' ``job.started`` lines."""
        runs: Counter[str] = Counter()
        wanted = {str(i) for i in ids}
        for path in self.worker_logs:
            for raw in path.read_bytes().splitlines():
                if b'"job.started"' not in raw:
                    continue
                line = orjson.loads(raw)
                if line.get("request_id") in wanted:
                    runs[line["request_id"]] += 1
        return sum(count - 1 for count in runs.values())

    async def wallet_matches_ledger(self) -> bool:
        row = await self.pool.fetchrow(_WALLET, self.user_id)
        assert row is not None
        return bool(row["balance"] == row["ledger_balance"] and row["reserved"] == 0)


# A request is charged more than once if it has more than one ending ledger row (settle or
# refund), or was charged (settled) although it failed.
_DOUBLE_CHARGED = """
SELECT count(*) FROM (
    SELECT r.id
    FROM requests r JOIN credit_ledger l ON l.request_id = r.id
    WHERE r.id = ANY($1)
    GROUP BY r.id, r.status
    HAVING count(*) FILTER (WHERE l.kind IN ('settle', 'refund')) > 1
        OR (r.status <> 'succeeded' AND count(*) FILTER (WHERE l.kind = 'settle') > 0)
) charged
"""

_WALLET = """
SELECT u.balance, u.reserved,
       (SELECT sum(CASE kind WHEN 'grant' THEN amount WHEN 'refund' THEN amount
                             WHEN 'reserve' THEN -amount ELSE 0 END)
        FROM credit_ledger WHERE user_id = u.id) AS ledger_balance
FROM users u WHERE u.id = $1
"""
