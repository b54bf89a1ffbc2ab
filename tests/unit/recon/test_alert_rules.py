"""The alert rules on health reports built by hand."""

from typing import Any

import pytest

from libs.contracts import RESULTS_STREAM, TASKS_GROUP, TASKS_STREAM
from services.recon.alerts.rules import Signals, Thresholds, evaluate
from services.recon.health.schemas import (
    GroupInfo,
    Health,
    IntegrationBudget,
    OutboxBacklog,
    Probe,
    StreamInfo,
    UnfinishedRequests,
)
from services.recon.webhooks.schemas import WebhookFigures

LIMITS = Thresholds(outbox_age_s=30, stuck_age_s=900)


def health(
    *,
    outbox_age: float | None = None,
    unfinished: int = 0,
    oldest: float | None = None,
    tasks: int = 0,
    live: int = 1,
    **probes: Any,
) -> Health:
    group = GroupInfo(pending=0, consumers=max(live, 1), live_consumers=live, lag=0)
    return Health(
        status="ok",
        postgres=probes.get("postgres", Probe(status="ok")),
        redis=probes.get("redis", Probe(status="ok")),
        outbox=OutboxBacklog(count=1 if outbox_age else 0, oldest_age_seconds=outbox_age),
        requests=UnfinishedRequests(count=unfinished, oldest_age_seconds=oldest),
        streams={
            TASKS_STREAM: StreamInfo(status="present", length=tasks, groups={TASKS_GROUP: group}),
            RESULTS_STREAM: StreamInfo(status="absent", length=0, groups={}),
        },
    )


def keys(report: Health) -> list[str]:
    return [alert.key for alert in evaluate(report, LIMITS)]


def test_a_healthy_idle_system_raises_nothing() -> None:
    assert keys(health(live=0)) == []


@pytest.mark.parametrize(("age", "expected"), [(10.0, []), (30.0, []), (31.0, ["relay_stalled"])])
def test_relay_stalled_past_the_outbox_age(age: float, expected: list[str]) -> None:
    assert keys(health(outbox_age=age)) == expected


def test_requests_stuck_past_the_age() -> None:
    assert keys(health(unfinished=3, oldest=899)) == []
    report = evaluate(health(unfinished=3, oldest=901), LIMITS)
    assert [(a.key, a.severity) for a in report] == [("requests_stuck", "warning")]
    assert "3 requests unfinished" in report[0].detail


def test_workers_absent_only_when_work_waits() -> None:
    assert keys(health(tasks=5, live=1)) == []
    assert keys(health(tasks=0, unfinished=0, live=0)) == []
    assert keys(health(tasks=5, live=0)) == ["workers_absent"]
    assert keys(health(unfinished=2, oldest=5, live=0)) == ["workers_absent"]


def test_unreachable_servers_are_critical() -> None:
    report = health(postgres=Probe(status="error", error="no answer within 2s"))
    alerts = evaluate(report, LIMITS)
    assert [(a.key, a.severity, a.detail) for a in alerts] == [
        ("postgres_unreachable", "critical", "no answer within 2s")
    ]


def test_dead_letters_lately_raise_a_warning() -> None:
    assert keys(health(live=0)) == []
    alerts = evaluate(health(live=0), LIMITS, Signals(dead_letters_new=2))
    assert [(a.key, a.severity) for a in alerts] == [("dead_letters_growing", "warning")]
    assert "2 tasks went to relai:dead-letters" in alerts[0].detail


def _spent(spent: int, budget: int = 100) -> Health:
    report = health(live=0)
    report.budgets = {
        "openai": IntegrationBudget(
            budget=budget, spent=spent, window_seconds=3600, resets_in_seconds=1200
        )
    }
    return report


@pytest.mark.parametrize(
    ("spent", "expected"),
    [
        (0, []),
        (89, []),
        (90, ["budget_nearly_spent:openai"]),
        (100, ["budget_nearly_spent:openai"]),
    ],
)
def test_a_budget_nearly_spent_warns_per_integration(spent: int, expected: list[str]) -> None:
    assert keys(_spent(spent)) == expected


def test_the_budget_warning_says_how_much_and_until_when() -> None:
    (alert,) = evaluate(_spent(95), Thresholds(outbox_age_s=30, stuck_age_s=900, budget_ratio=0.5))
    assert (alert.severity, alert.clear_for_s) == ("warning", 3600)  # resolved after a window
    assert alert.title == "Budget of openai nearly spent"
    assert alert.detail == (
        "openai has spent 95 of its 100 credits for this 3600s window (95%, threshold 50%); "
        "once spent, its jobs wait for the next window, in 1200s."
    )


def _webhooks(oldest: float | None, *, pending: int = 4, disabled: int = 0) -> Health:
    report = health(live=0)
    report.webhooks = WebhookFigures(
        pending=pending if oldest else 0,
        due=1 if oldest else 0,
        destinations=2 if oldest else 0,
        oldest_pending_age_seconds=oldest,
        endpoints_disabled=disabled,
        failed_last_hour=0,
    )
    return report


@pytest.mark.parametrize(
    ("oldest", "expected"),
    [(None, []), (600.0, []), (900.0, []), (901.0, ["webhook_backlog_old"])],
)
def test_webhook_deliveries_late_past_the_backlog_age(
    oldest: float | None, expected: list[str]
) -> None:
    assert keys(_webhooks(oldest)) == expected


def test_the_late_deliveries_warning_says_how_many_and_where_they_wait() -> None:
    limits = Thresholds(outbox_age_s=30, stuck_age_s=900, webhook_backlog_age_s=60)
    (alert,) = evaluate(_webhooks(120.4), limits)
    assert (alert.key, alert.severity, alert.title) == (
        "webhook_backlog_old",
        "warning",
        "Webhook deliveries late",
    )
    assert alert.detail == (
        "4 webhook deliveries pending to 2 destinations, the oldest for 120s (threshold 60s); "
        "1 of them are due and wait for a dispatcher, the others for their next try after a "
        "failed one."
    )


def test_endpoints_disabled_lately_warn_and_a_standing_count_does_not() -> None:
    assert keys(_webhooks(None, disabled=7)) == []  # disabled long ago: not news
    (alert,) = evaluate(_webhooks(None, disabled=7), LIMITS, Signals(endpoints_disabled_new=2))
    assert (alert.key, alert.severity) == ("webhook_endpoint_disabled", "warning")
    assert alert.detail.startswith(
        "2 webhook endpoints were disabled in the last 15 minutes after failing too long or "
        "answering 410 Gone; 7 disabled in all"
    )
    # Without the webhook figures (unreadable), the signal still speaks.
    (alert,) = evaluate(health(live=0), LIMITS, Signals(endpoints_disabled_new=1))
    assert "in all" not in alert.detail
