"""Alerts to a webhook, Discord-compatible by default: one message when a condition starts, again
only after the cool-down while it lasts, and one when it clears. Every alert is logged too."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from libs.logs import get_logger
from libs.security.ssrf import UrlPolicy, guarded_client
from services.recon.alerts.rules import Alert

log = get_logger(__name__)

_COLORS = {"critical": 0xE74C3C, "warning": 0xF39C12, "resolved": 0x2ECC71}


@dataclass(slots=True)
class _Sent:
    alert: Alert
    at: float
    cleared_at: float | None = None
    """When the condition was first seen absent since it last fired."""


def webhook_client(ssrf_allow: Iterable[str], *, timeout_s: float = 5.0) -> httpx.AsyncClient:
    """The client alerts leave through: the SSRF guard of provider calls (a webhook at a
    private, loopback or metadata address is refused unless ``RELAI_SSRF_ALLOW`` lists it, and
    redirects are not followed), since a webhook URL is configuration anyone with config
    access can set."""
    return guarded_client(UrlPolicy.from_allow(ssrf_allow), timeout=timeout_s)


class WebhookNotifier:
    def __init__(
        self, *, client: httpx.AsyncClient, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._client = client
        self._clock = clock
        self._firing: dict[str, _Sent] = {}

    @property
    def firing(self) -> list[Alert]:
        return [sent.alert for sent in self._firing.values()]

    async def publish(self, alerts: list[Alert], *, url: str | None, cooldown_s: float) -> None:
        """Send to ``url`` what is new, what outlived its cool-down, and what cleared (and stayed
        clear for the alert's ``clear_for_s``). A delivery that fails is tried again on the next
        call."""
        now = self._clock()
        current = {alert.key: alert for alert in alerts}
        for alert in alerts:
            sent = self._firing.get(alert.key)
            if sent is not None:
                sent.cleared_at = None
                if now - sent.at < cooldown_s:
                    continue
            log.warning("alert.firing", alert=alert.key, detail=alert.detail)
            if await self._send(url, payload(alert, status="firing", repeat=sent is not None)):
                self._firing[alert.key] = _Sent(alert, now)
        for key, sent in list(self._firing.items()):
            if key in current:
                continue
            if sent.cleared_at is None:
                sent.cleared_at = now
            if now - sent.cleared_at < sent.alert.clear_for_s:
                continue
            log.info("alert.resolved", alert=key)
            if await self._send(url, payload(sent.alert, status="resolved")):
                del self._firing[key]

    async def _send(self, url: str | None, body: dict[str, Any]) -> bool:
        if url is None:
            return True
        try:
            response = await self._client.post(url, json=body)
        except httpx.HTTPError as exc:
            log.warning("alert.delivery_failed", error=f"{type(exc).__name__}: {exc}")
            return False
        if response.status_code >= 300:
            log.warning("alert.delivery_failed", status=response.status_code)
            return False
        return True


def payload(alert: Alert, *, status: str, repeat: bool = False) -> dict[str, Any]:
    """A Discord webhook message (``content`` plus one embed); Slack-style receivers read
    ``content`` too."""
    label = "RESOLVED" if status == "resolved" else alert.severity.upper()
    still = " (still firing)" if repeat else ""
    return {
        "username": "Relai recon",
        "content": f"[{label}] {alert.title}{still}",
        "embeds": [
            {
                "title": alert.title,
                "description": alert.detail,
                "color": _COLORS["resolved" if status == "resolved" else alert.severity],
                "timestamp": datetime.now(UTC).isoformat(),
                "fields": [
                    {"name": "alert", "value": alert.key, "inline": True},
                    {"name": "severity", "value": alert.severity, "inline": True},
                    {"name": "status", "value": status, "inline": True},
                ],
            }
        ],
    }
