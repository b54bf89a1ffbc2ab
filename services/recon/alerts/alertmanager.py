"""Recon's alerts posted to Alertmanager (``RELAI_RECON_ALERTMANAGER_URL``), beside or instead
of the webhook, so that Alertmanager groups them with Prometheus's and sends each cause once.

Alertmanager keeps an alert until its ``endsAt``: every run re-posts what fires with an
``endsAt`` a few intervals ahead, so an alert recon stops renewing (recon stopped, another
replica leads) ends by itself. One that cleared, and stayed clear for ``hold_s`` (or its
``clear_for_s``, if longer), is posted with ``endsAt`` now: resolved. The hold keeps Prometheus's
alert of the same cause silenced until that one has resolved too (Prometheus needs a scrape and
an evaluation to see the cause gone), or it would be sent, firing, as recon's resolves.

Labels: ``alertname`` (``Recon`` and the cause in CamelCase), ``cause`` (the alert's key up to a
``:``; after it, a budget alert's integration, as the label ``integration``), ``severity`` and
``origin="recon"``, by which the shipped Alertmanager config silences Prometheus's alert of the
same cause."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from libs.logs import get_logger
from services.recon.alerts.rules import Alert

log = get_logger(__name__)

ORIGIN = "recon"
RENEWALS = 4
"""An alert posted is kept this many alert intervals unless renewed."""
ALERTS_PATH = "/api/v2/alerts"


@dataclass(slots=True)
class _Posted:
    alert: Alert
    starts_at: datetime
    cleared_at: float | None = None
    """When the condition was first seen absent since it last fired."""


def labels(alert: Alert) -> dict[str, str]:
    cause, _, integration = alert.key.partition(":")
    found = {
        "alertname": "Recon" + "".join(word.title() for word in cause.split("_")),
        "cause": cause,
        "severity": alert.severity,
        "origin": ORIGIN,
    }
    if integration:
        found["integration"] = integration
    return found


class AlertmanagerNotifier:
    def __init__(
        self,
        *,
        client: httpx.AsyncClient,
        url: str,
        interval_s: float,
        hold_s: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._client = client
        self._url = url.rstrip("/") + ALERTS_PATH
        self._keep = timedelta(seconds=RENEWALS * interval_s)
        self._hold_s = hold_s
        self._clock = clock
        self._now = now
        self._posted: dict[str, _Posted] = {}

    async def publish(self, alerts: list[Alert]) -> None:
        """Post what fires (renewed) and what cleared (resolved). A post that fails is made
        again, whole, on the next run."""
        now = self._now()
        for alert in alerts:
            posted = self._posted.setdefault(alert.key, _Posted(alert, now))
            posted.alert, posted.cleared_at = alert, None
        resolved = self._cleared({alert.key for alert in alerts})
        body = [
            _entry(posted, now if key in resolved else now + self._keep)
            for key, posted in self._posted.items()
        ]
        if body and await self._post(body):
            for key in resolved:
                del self._posted[key]

    def _cleared(self, firing: set[str]) -> set[str]:
        """The alerts posted before, absent now, and for long enough to be resolved."""
        tick = self._clock()
        done = set()
        for key, posted in self._posted.items():
            if key in firing:
                continue
            if posted.cleared_at is None:
                posted.cleared_at = tick
            if tick - posted.cleared_at >= max(self._hold_s, posted.alert.clear_for_s):
                done.add(key)
        return done

    async def _post(self, body: list[dict[str, Any]]) -> bool:
        try:
            response = await self._client.post(self._url, json=body)
        except httpx.HTTPError as exc:
            log.warning("alert.alertmanager_failed", error=f"{type(exc).__name__}: {exc}")
            return False
        if response.status_code >= 300:
            log.warning("alert.alertmanager_failed", status=response.status_code)
            return False
        return True


def _entry(posted: _Posted, ends: datetime) -> dict[str, Any]:
    alert = posted.alert
    return {
        "labels": labels(alert),
        "annotations": {"summary": alert.title, "description": alert.detail},
        "startsAt": posted.starts_at.isoformat(),
        "endsAt": ends.isoformat(),
    }
