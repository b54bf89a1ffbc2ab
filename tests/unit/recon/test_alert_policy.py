"""What the alerts go by: the active config ``recon`` where it sets a value, the settings
elsewhere, worked out again only when the loaded config changes."""

from typing import Any, cast

from libs.config import ConfigWatcher, LoadedConfig, ReconConfig
from services.recon.alerts.policy import AlertPolicy, alert_policy
from services.recon.alerts.rules import Thresholds
from services.recon.settings import ReconSettings

SETTINGS = ReconSettings(
    recon_alert_webhook_url="https://hooks.example/from-env",
    recon_alert_cooldown_s=900,
    recon_alert_outbox_age_s=30,
    recon_alert_stuck_age_s=900,
    recon_alert_budget_ratio=0.9,
    webhook_backlog_alert_s=900,
)


class Loaded:
    """The part of the config watcher the policy reads: the config loaded now."""

    def __init__(self) -> None:
        self.now: LoadedConfig | None = None

    def get(self, config_id: str) -> LoadedConfig | None:
        return self.now if config_id == "recon" else None

    def load(self, version: str, data: dict[str, Any]) -> None:
        self.now = LoadedConfig("recon", version, "sum", ReconConfig.model_validate(data))


def test_without_a_config_the_settings_hold() -> None:
    assert alert_policy(SETTINGS, None).current() == AlertPolicy(
        "https://hooks.example/from-env", 900, Thresholds(30, 900, 0.9)
    )


def test_the_config_overrides_what_it_sets_and_only_that() -> None:
    loaded = Loaded()
    source = alert_policy(SETTINGS, cast(ConfigWatcher, loaded))
    assert source.current().webhook_url == "https://hooks.example/from-env"

    loaded.load("1", {"alerts": {"webhook_url": "https://hooks.example/v1", "budget_ratio": 0.5}})
    assert source.current() == AlertPolicy(
        "https://hooks.example/v1", 900, Thresholds(30, 900, 0.5)
    )
    assert source.current() is source.current()  # not rebuilt while the config stays

    loaded.load("2", {"alerts": {"cooldown_s": 0}})
    assert source.current() == AlertPolicy(
        "https://hooks.example/from-env", 0, Thresholds(30, 900, 0.9)
    )


def test_the_webhook_backlog_age_comes_from_the_settings_unless_the_config_sets_it() -> None:
    loaded = Loaded()
    source = alert_policy(SETTINGS.model_copy(update={"webhook_backlog_alert_s": 600}), None)
    assert source.current().thresholds.webhook_backlog_age_s == 600

    source = alert_policy(SETTINGS, cast(ConfigWatcher, loaded))
    loaded.load("1", {"alerts": {"webhook_backlog_age_s": 120}})
    assert source.current().thresholds == Thresholds(30, 900, 0.9, 120)
