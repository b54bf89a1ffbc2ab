"""The alert loop: on the leading replica, every few seconds, read the health report, decide
what is wrong and tell the webhook and Alertmanager."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from redis.asyncio import Redis

from libs.contracts import DEAD_LETTERS_STREAM
from libs.db import PgPool
from libs.logs import get_logger
from libs.loops import every
from services.recon.alerts.alertmanager import AlertmanagerNotifier
from services.recon.alerts.leader import Leadership
from services.recon.alerts.notifier import WebhookNotifier
from services.recon.alerts.policy import AlertPolicy
from services.recon.alerts.rules import Alert, Signals, evaluate
from services.recon.health.schemas import Health
from services.recon.health.service import check_health
from services.recon.webhooks.service import NewlyDisabled

log = get_logger(__name__)

LOOK_BACK_S = 15 * 60


class AlertLoop:
    def __init__(
        self,
        pool: PgPool,
        redis: Redis,
        *,
        leadership: Leadership,
        notifier: WebhookNotifier,
        policy: Callable[[], AlertPolicy],
        interval_s: float,
        health_timeout: float,
        alertmanager: AlertmanagerNotifier | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._pool = pool
        self._redis = redis
        self._leadership = leadership
        self._notifier = notifier
        self._alertmanager = alertmanager
        self._policy = policy
        self._interval_s = interval_s
        self._health_timeout = health_timeout
        self._clock = clock
        self._disabled = NewlyDisabled(look_back_s=LOOK_BACK_S, clock=clock)
        self._dead_letters: deque[tuple[float, int]] = deque()
        """(time, length of the dead-letters stream) over the look-back window."""

    async def run_forever(self) -> None:
        try:
            await every(self._interval_s, self.run_once, name="alerts")
        finally:
            await self._leadership.release()

    async def run_once(self) -> list[Alert] | None:
        """The alerts found, or None when another replica leads."""
        if not await self._leadership.is_leader():
            return None
        health = await check_health(
            pool=self._pool, redis=self._redis, timeout=self._health_timeout
        )
        policy = self._policy()
        signals = Signals(
            dead_letters_new=self._dead_letters_new(health),
            endpoints_disabled_new=await self._disabled.look(
                self._pool, timeout=self._health_timeout
            ),
        )
        alerts = evaluate(health, policy.thresholds, signals)
        await self._notifier.publish(alerts, url=policy.webhook_url, cooldown_s=policy.cooldown_s)
        if self._alertmanager is not None:
            await self._alertmanager.publish(alerts)
        return alerts

    def _dead_letters_new(self, health: Health) -> int:
        stream = (health.streams or {}).get(DEAD_LETTERS_STREAM)
        if stream is None:
            return 0
        now = self._clock()
        self._dead_letters.append((now, stream.length))
        while self._dead_letters and self._dead_letters[0][0] < now - LOOK_BACK_S:
            self._dead_letters.popleft()
        return max(0, stream.length - self._dead_letters[0][1])
