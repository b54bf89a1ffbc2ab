"""The dispatcher's settings: the defaults the design names, and the combinations that would let
two dispatchers send one delivery at once refused at startup."""

import pytest
from pydantic import ValidationError

from services.dispatcher.settings import DispatcherSettings


def test_the_defaults() -> None:
    settings = DispatcherSettings()
    assert (
        settings.webhook_timeout_s,
        settings.webhook_retry_base_s,
        settings.webhook_retry_cap_s,
        settings.webhook_retry_for_s,
        settings.webhook_disable_after_s,
        settings.webhook_concurrency,
        settings.webhook_lease_s,
    ) == (10, 5, 3600, 86400, 259200, 32, 60)
    assert (settings.dispatcher_port, settings.dispatcher_metrics_port) == (8002, 9104)


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELAI_WEBHOOK_TIMEOUT_S", "2.5")
    monkeypatch.setenv("RELAI_WEBHOOK_CONCURRENCY", "4")
    monkeypatch.setenv("RELAI_SSRF_ALLOW", '["10.0.0.0/8"]')
    settings = DispatcherSettings()
    assert (settings.webhook_timeout_s, settings.webhook_concurrency) == (2.5, 4)
    assert settings.ssrf_allow == ["10.0.0.0/8"]


def test_a_lease_shorter_than_an_attempt_is_refused() -> None:
    with pytest.raises(ValidationError, match="RELAI_WEBHOOK_LEASE_S must exceed"):
        DispatcherSettings(webhook_timeout_s=30, webhook_lease_s=30)


def test_a_cap_below_the_base_is_refused() -> None:
    with pytest.raises(ValidationError, match="RELAI_WEBHOOK_RETRY_CAP_S must be at least"):
        DispatcherSettings(webhook_retry_base_s=10, webhook_retry_cap_s=5)
