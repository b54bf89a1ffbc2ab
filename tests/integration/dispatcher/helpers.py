"""Endpoints written with SQL, events queued through the outbox as the statements that record a
final state queue them, and the dispatcher run in the test's event loop."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx

from libs.db import PgPool
from libs.outbox import Ending, queue_events
from libs.webhooks import new_secret
from services.dispatcher.app import create_app
from services.dispatcher.delivery.service import Dispatcher
from services.dispatcher.settings import DispatcherSettings
from services.dispatcher.state import DispatcherState
from tests.support import ServerUrls, load_demo_catalog

Scope = MutableMapping[str, Any]


@dataclass(frozen=True)
class Endpoint:
    id: uuid.UUID
    user_id: uuid.UUID
    secret: str


async def create_endpoint(
    pool: PgPool,
    user_id: uuid.UUID,
    url: str,
    *,
    events: Sequence[str] = ("request.succeeded", "request.failed"),
    previous_secret: str | None = None,
    previous_for_s: float | None = None,
    enabled: bool = True,
) -> Endpoint:
    """An endpoint as the API stores one; ``previous_for_s`` (negative: ended) is how long the
    previous secret still signs."""
    endpoint = Endpoint(uuid.uuid4(), user_id, new_secret())
    await pool.execute(
        """INSERT INTO webhook_endpoints
               (id, user_id, url, events, secret, previous_secret, previous_until, enabled)
           VALUES ($1, $2, $3, $4, $5, $6,
                   now() + make_interval(secs => $7::float8), $8)""",
        endpoint.id,
        user_id,
        url,
        list(events),
        endpoint.secret,
        previous_secret,
        previous_for_s,
        enabled,
    )
    return endpoint


async def queue(
    pool: PgPool, user_id: uuid.UUID, n: int = 1, *, status: str = "succeeded"
) -> list[uuid.UUID]:
    """``n`` requests of ``user_id`` ending with ``status``: their events queued as the outbox
    queues them; returns the ids of the deliveries."""
    now = datetime.now(UTC)
    endings = [Ending(user_id, uuid.uuid4(), status, now, now) for _ in range(n)]
    async with pool.acquire() as conn, conn.transaction():
        await queue_events(conn, endings)
    rows = await pool.fetch(
        "SELECT id FROM webhook_deliveries WHERE request_id = ANY($1::uuid[])",
        [e.request_id for e in endings],
    )
    return [row["id"] for row in rows]


async def queue_one_off(pool: PgPool, user_id: uuid.UUID, url: str) -> uuid.UUID:
    """A request of ``user_id`` that named ``url`` at submit, ended: its event queued; returns
    the delivery's id."""
    await load_demo_catalog(pool)
    request_id = uuid.uuid4()
    await pool.execute(
        """INSERT INTO requests (id, user_id, offer_id, inputs, prompt, price, status,
                                 webhook_url)
           SELECT $1, $2, id, '{}', 'p', 0, 'succeeded', $3 FROM offers WHERE action = 'echo'""",
        request_id,
        user_id,
        url,
    )
    now = datetime.now(UTC)
    async with pool.acquire() as conn, conn.transaction():
        assert await queue_events(conn, [Ending(user_id, request_id, "succeeded", now, now)]) == 1
    delivery_id: uuid.UUID = await pool.fetchval(
        "SELECT id FROM webhook_deliveries WHERE request_id = $1", request_id
    )
    return delivery_id


async def deliveries(pool: PgPool) -> dict[uuid.UUID, asyncpg.Record]:
    return {row["id"]: row for row in await pool.fetch("SELECT * FROM webhook_deliveries")}


async def attempts(pool: PgPool, delivery_id: uuid.UUID) -> list[asyncpg.Record]:
    return list(
        await pool.fetch(
            "SELECT * FROM webhook_attempts WHERE delivery_id = $1 ORDER BY n", delivery_id
        )
    )


async def wait_for(
    check: Callable[[], Awaitable[bool]] | Callable[[], bool], *, timeout: float = 15.0
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        outcome = check()
        if not isinstance(outcome, bool):
            outcome = await outcome
        if outcome:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout:g}s: {check}")
        await asyncio.sleep(0.05)


async def all_settled(pool: PgPool, count: int) -> bool:
    """Whether ``count`` deliveries exist and none is pending."""
    rows = await pool.fetch("SELECT status FROM webhook_deliveries")
    return len(rows) == count and all(r["status"] != "pending" for r in rows)


def settings_for(servers: ServerUrls, **overrides: Any) -> DispatcherSettings:
    """Short timeouts, leases and retries, so that a test runs in seconds; the receivers'
    loopback address allowed as ``RELAI_SSRF_ALLOW`` would."""
    values: dict[str, Any] = {
        "database_url": servers.database_url,
        "redis_url": servers.redis_url,
        "ssrf_allow": ["127.0.0.1"],
        "webhook_timeout_s": 2.0,
        "webhook_lease_s": 4.0,
        "webhook_retry_base_s": 0.1,
        "webhook_retry_cap_s": 0.3,
        "webhook_retry_for_s": 60.0,
        "webhook_concurrency": 8,
        "dispatcher_poll_s": 0.5,
        "dispatcher_health_timeout": 1.0,
        **overrides,
    }
    return DispatcherSettings(**values)


@dataclass
class Running:
    client: httpx.AsyncClient
    """On the dispatcher's HTTP app (``/health``)."""
    dispatcher: Dispatcher


@asynccontextmanager
async def dispatching(settings: DispatcherSettings) -> AsyncIterator[Running]:
    """The dispatcher's app with its lifespan run as uvicorn runs it: its loop dispatches
    until the block ends."""
    app = create_app(settings)
    async with app.router.lifespan_context(app) as state:
        scope_state = dict(state or {})

        async def with_state(scope: Scope, receive: Any, send: Any) -> None:
            await app({**scope, "state": scope_state}, receive, send)

        transport = httpx.ASGITransport(app=with_state)
        async with httpx.AsyncClient(transport=transport, base_url="http://dispatcher") as client:
            (built,) = [v for v in scope_state.values() if isinstance(v, DispatcherState)]
            yield Running(client=client, dispatcher=built.dispatcher)
