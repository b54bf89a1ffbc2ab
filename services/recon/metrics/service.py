"""The sampler: every interval, read the backlog (webhook deliveries included) from Postgres and
the streams from Redis, and set the gauges. A source that cannot be read keeps its last figures
and reports 0 success."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from libs.db import PgPool
from libs.logs import get_logger
from libs.loops import every
from services.recon.health import budgets as health_budgets
from services.recon.health import repository as health_repository
from services.recon.health import streams as health_streams
from services.recon.health.service import STREAMS
from services.recon.metrics import registry
from services.recon.metrics.repository import top_spenders
from services.recon.webhooks import repository as webhooks_repository

log = get_logger(__name__)


class MetricsSampler:
    def __init__(
        self,
        pool: PgPool,
        redis: Redis,
        *,
        interval_s: float,
        timeout_s: float,
        top_users: int,
        top_users_window_s: float,
    ) -> None:
        self._pool = pool
        self._redis = redis
        self._interval_s = interval_s
        self._timeout_s = timeout_s
        self._top_users = top_users
        self._window_s = top_users_window_s

    async def run_forever(self) -> None:
        await every(self._interval_s, self.sample, name="metrics")

    async def sample(self) -> None:
        await asyncio.gather(self._sample_postgres(), self._sample_redis())

    async def _sample_postgres(self) -> None:
        try:
            async with asyncio.timeout(self._timeout_s), self._pool.acquire() as conn:
                backlog = await health_repository.read_backlog(conn)
                spenders = await top_spenders(conn, window_s=self._window_s, limit=self._top_users)
                webhooks = await webhooks_repository.read_figures(conn)
        except Exception as exc:
            registry.SAMPLE_OK.labels("postgres").set(0)
            log.warning("recon.metrics_postgres_failed", error=f"{type(exc).__name__}: {exc}")
            return
        registry.OUTBOX_BACKLOG.set(backlog.outbox_count)
        registry.OUTBOX_OLDEST_AGE.set(backlog.outbox_oldest_age or 0.0)
        registry.UNFINISHED.set(backlog.unfinished_count)
        registry.UNFINISHED_OLDEST_AGE.set(backlog.unfinished_oldest_age or 0.0)
        registry.WEBHOOK_BACKLOG.set(webhooks.pending)
        registry.WEBHOOK_OLDEST_PENDING_AGE.set(webhooks.oldest_pending_age_seconds or 0.0)
        registry.WEBHOOK_ENDPOINTS_DISABLED.set(webhooks.endpoints_disabled)
        registry.WEBHOOK_FAILED_LAST_HOUR.set(webhooks.failed_last_hour)
        registry.TOP_SPEND.clear()
        for spender in spenders:
            registry.TOP_SPEND.labels(spender.name).set(spender.spent)
        registry.SAMPLE_OK.labels("postgres").set(1)

    async def _sample_redis(self) -> None:
        try:
            async with asyncio.timeout(self._timeout_s):
                infos = {s: await health_streams.read_stream(self._redis, s) for s in STREAMS}
                budgets = await health_budgets.read_budgets(self._redis)
        except Exception as exc:
            registry.SAMPLE_OK.labels("redis").set(0)
            log.warning("recon.metrics_redis_failed", error=f"{type(exc).__name__}: {exc}")
            return
        for stream, info in infos.items():
            registry.STREAM_LENGTH.labels(stream).set(info.length)
            for group, figures in info.groups.items():
                registry.GROUP_PENDING.labels(stream, group).set(figures.pending)
                registry.GROUP_CONSUMERS.labels(stream, group).set(figures.consumers)
                if figures.lag is not None:
                    registry.GROUP_LAG.labels(stream, group).set(figures.lag)
        for integration, budget in budgets.items():
            registry.BUDGET.labels(integration).set(budget.budget)
            registry.BUDGET_SPENT.labels(integration).set(budget.spent)
        registry.SAMPLE_OK.labels("redis").set(1)
