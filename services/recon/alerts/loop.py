"""The alert loop: on the leading replica, every few seconds, read the health report, decide
what is wrong and tell the webhook."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from libs.db import PgPool
from libs.logs import get_logger
from services.recon.alerts.leader import Leadership
from services.recon.alerts.notifier import WebhookNotifier
from services.recon.alerts.rules import Alert, Thresholds, evaluate
from services.recon.health.service import check_health

log = get_logger(__name__)


class AlertLoop:
    def __init__(
        self,
        pool: PgPool,
        redis: Redis,
        *,
        leadership: Leadership,
        notifier: WebhookNotifier,
        thresholds: Thresholds,
        interval_s: float,
        health_timeout: float,
    ) -> None:
        self._pool = pool
        self._redis = redis
        self._leadership = leadership
        self._notifier = notifier
        self._thresholds = thresholds
        self._interval_s = interval_s
        self._health_timeout = health_timeout

    async def run_forever(self) -> None:
        try:
            while True:
                try:
                    await self.run_once()
                except Exception:
                    log.exception("alerts.run_failed")
                await asyncio.sleep(self._interval_s)
        finally:
            await self._leadership.release()

    async def run_once(self) -> list[Alert] | None:
        """The alerts found, or None when another replica leads."""
        if not await self._leadership.is_leader():
            return None
        health = await check_health(
            pool=self._pool, redis=self._redis, timeout=self._health_timeout
        )
        alerts = evaluate(health, self._thresholds)
        await self._notifier.publish(alerts)
        return alerts
