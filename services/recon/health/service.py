"""Put the health report together: each probe bounded in time, a failure reported, not raised."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from redis.asyncio import Redis

from libs.contracts import DEAD_LETTERS_STREAM, RESULTS_STREAM, TASKS_STREAM
from libs.db import PgPool
from libs.logs import get_logger
from services.recon.completion.schemas import CompletionReport
from services.recon.health import budgets, repository, streams
from services.recon.health.schemas import (
    Health,
    IntegrationBudget,
    OutboxBacklog,
    Probe,
    StreamInfo,
    UnfinishedRequests,
)
from services.recon.webhooks import repository as webhooks_repository
from services.recon.webhooks.schemas import WebhookFigures

STREAMS = (TASKS_STREAM, RESULTS_STREAM, DEAD_LETTERS_STREAM)

log = get_logger(__name__)


async def check_health(
    *, pool: PgPool, redis: Redis, timeout: float, completion: CompletionReport | None = None
) -> Health:
    (postgres, backlog), (redis_probe, redis_figures), webhooks = await asyncio.gather(
        _probe_postgres(pool, timeout), _probe_redis(redis, timeout), _read_webhooks(pool, timeout)
    )
    healthy = postgres.status == "ok" and redis_probe.status == "ok"
    return Health(
        status="ok" if healthy else "unavailable",
        postgres=postgres,
        redis=redis_probe,
        outbox=None
        if backlog is None
        else OutboxBacklog(
            count=backlog.outbox_count, oldest_age_seconds=backlog.outbox_oldest_age
        ),
        requests=None
        if backlog is None
        else UnfinishedRequests(
            count=backlog.unfinished_count, oldest_age_seconds=backlog.unfinished_oldest_age
        ),
        streams=redis_figures.streams if redis_figures else None,
        budgets=redis_figures.budgets if redis_figures else None,
        completion=completion,
        webhooks=webhooks,
    )


async def _probe_postgres(pool: PgPool, timeout: float) -> tuple[Probe, repository.Backlog | None]:
    async def read() -> repository.Backlog:
        async with pool.acquire() as conn:
            return await repository.read_backlog(conn)

    try:
        backlog = await asyncio.wait_for(read(), timeout)
    except Exception as exc:
        return _failed(exc, timeout), None
    return Probe(status="ok"), backlog


async def _read_webhooks(pool: PgPool, timeout: float) -> WebhookFigures | None:
    """The webhook figures, or None: they inform, and never make the report unavailable."""

    async def read() -> WebhookFigures:
        async with pool.acquire() as conn:
            return await webhooks_repository.read_figures(conn)

    try:
        return await asyncio.wait_for(read(), timeout)
    except Exception as exc:
        log.warning("health.webhooks_failed", error=repr(exc))
        return None


@dataclass(frozen=True, slots=True)
class _RedisFigures:
    streams: dict[str, StreamInfo]
    budgets: dict[str, IntegrationBudget]


async def _probe_redis(redis: Redis, timeout: float) -> tuple[Probe, _RedisFigures | None]:
    async def read() -> _RedisFigures:
        await redis.ping()
        return _RedisFigures(
            streams={stream: await streams.read_stream(redis, stream) for stream in STREAMS},
            budgets=await budgets.read_budgets(redis),
        )

    try:
        infos = await asyncio.wait_for(read(), timeout)
    except Exception as exc:
        return _failed(exc, timeout), None
    return Probe(status="ok"), infos


def _failed(exc: Exception, timeout: float) -> Probe:
    """What ``/health`` tells anyone who asks: the kind of failure, never its text (which names
    internal hosts, ports and users); the log has it whole."""
    if isinstance(exc, TimeoutError):
        return Probe(status="error", error=f"no answer within {timeout:g}s")
    log.warning("health.probe_failed", error=repr(exc))
    return Probe(status="error", error=f"unreachable ({type(exc).__name__})")
