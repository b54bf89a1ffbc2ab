"""What the alerts go by: the ``alerts`` section of the active config ``recon`` where it sets a
value, else the process settings (``RELAI_RECON_ALERT_*``, ``RELAI_WEBHOOK_BACKLOG_ALERT_S``). A
new version activated applies from the alert loop's next run, without a restart."""

from __future__ import annotations

from dataclasses import dataclass

from libs.config import ConfigWatcher, Derived, LoadedConfig, ReconConfig
from services.recon.alerts.rules import Thresholds
from services.recon.settings import ReconSettings


@dataclass(frozen=True, slots=True)
class AlertPolicy:
    webhook_url: str | None
    """Where alerts go; None: they are only logged."""
    cooldown_s: float
    """A condition still firing is announced again only after this long."""
    thresholds: Thresholds


AlertPolicySource = Derived[AlertPolicy]


def alert_policy(settings: ReconSettings, config: ConfigWatcher | None) -> AlertPolicySource:
    def build(loaded: LoadedConfig | None) -> AlertPolicy:
        alerts = loaded.data.alerts if loaded and isinstance(loaded.data, ReconConfig) else None

        def pick(name: str, default: float) -> float:
            value = getattr(alerts, name, None)
            return default if value is None else float(value)

        s = settings
        return AlertPolicy(
            webhook_url=(alerts.webhook_url if alerts else None) or s.recon_alert_webhook_url,
            cooldown_s=pick("cooldown_s", s.recon_alert_cooldown_s),
            thresholds=Thresholds(
                outbox_age_s=pick("outbox_age_s", s.recon_alert_outbox_age_s),
                stuck_age_s=pick("stuck_age_s", s.recon_alert_stuck_age_s),
                budget_ratio=pick("budget_ratio", s.recon_alert_budget_ratio),
                webhook_backlog_age_s=pick("webhook_backlog_age_s", s.webhook_backlog_alert_s),
            ),
        )

    return Derived(config, "recon", build)
