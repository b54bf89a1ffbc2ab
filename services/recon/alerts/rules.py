"""What is worth waking someone for, decided from one health report (budgets included) and what
the alert loop saw over time (dead letters lately). Pure: no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from libs.contracts import TASKS_GROUP, TASKS_STREAM
from services.recon.health.schemas import Health

Severity = Literal["critical", "warning"]


@dataclass(frozen=True, slots=True)
class Thresholds:
    outbox_age_s: float
    """The oldest unpublished outbox row older than this: the relay is stalled."""
    stuck_age_s: float
    """The oldest unfinished request older than this: requests are stuck."""
    budget_ratio: float = 0.9
    """An integration that spent this share of its window's credit budget: nearly spent."""
    webhook_backlog_age_s: float = 900.0
    """The oldest pending webhook delivery waiting longer than this: deliveries are late."""


@dataclass(frozen=True, slots=True)
class Signals:
    dead_letters_new: int = 0
    """Tasks dead-lettered within the alert loop's look-back (15 minutes)."""
    endpoints_disabled_new: int = 0
    """Webhook endpoints disabled within the alert loop's look-back (15 minutes)."""


@dataclass(frozen=True, slots=True)
class Alert:
    key: str
    """Stable identity: the same condition keeps the same key while it lasts (deduplication)."""
    severity: Severity
    title: str
    detail: str
    clear_for_s: float = 0.0
    """How long the condition must stay absent before it is announced resolved: a budget
    nearly spent is not over because a new window began, only once a whole window stayed
    below the threshold."""


def evaluate(health: Health, thresholds: Thresholds, signals: Signals | None = None) -> list[Alert]:
    alerts: list[Alert] = []
    if signals is not None:
        alerts.extend(_from_signals(signals, thresholds))
    if health.postgres.status != "ok":
        alerts.append(
            Alert("postgres_unreachable", "critical", "Postgres unreachable", _err(health.postgres))
        )
    if health.redis.status != "ok":
        alerts.append(
            Alert("redis_unreachable", "critical", "Redis unreachable", _err(health.redis))
        )
    outbox = health.outbox
    if outbox and outbox.oldest_age_seconds and outbox.oldest_age_seconds > thresholds.outbox_age_s:
        alerts.append(
            Alert(
                "relay_stalled",
                "critical",
                "Outbox relay stalled",
                f"{outbox.count} outbox rows unpublished, the oldest for "
                f"{outbox.oldest_age_seconds:.0f}s (threshold {thresholds.outbox_age_s:g}s): "
                "no API process is publishing to Redis.",
            )
        )
    requests = health.requests
    if (
        requests
        and requests.oldest_age_seconds
        and requests.oldest_age_seconds > thresholds.stuck_age_s
    ):
        alerts.append(
            Alert(
                "requests_stuck",
                "warning",
                "Requests stuck",
                f"{requests.count} requests unfinished, the oldest for "
                f"{requests.oldest_age_seconds:.0f}s (threshold {thresholds.stuck_age_s:g}s).",
            )
        )
    alerts.extend(_webhooks(health, thresholds, signals or Signals()))
    absent = _workers_absent(health)
    if absent:
        alerts.append(Alert("workers_absent", "critical", "No live workers", absent))
    alerts.extend(_budgets_nearly_spent(health, thresholds))
    return alerts


def _budgets_nearly_spent(health: Health, thresholds: Thresholds) -> list[Alert]:
    alerts = []
    for name, budget in (health.budgets or {}).items():
        if budget.budget <= 0 or budget.spent < budget.budget * thresholds.budget_ratio:
            continue
        share = budget.spent / budget.budget
        alerts.append(
            Alert(
                f"budget_nearly_spent:{name}",
                "warning",
                f"Budget of {name} nearly spent",
                f"{name} has spent {budget.spent} of its {budget.budget} credits for this "
                f"{budget.window_seconds:g}s window ({share:.0%}, threshold "
                f"{thresholds.budget_ratio:.0%}); once spent, its jobs wait for the next "
                f"window, in {budget.resets_in_seconds:.0f}s.",
                clear_for_s=budget.window_seconds,
            )
        )
    return alerts


def _from_signals(signals: Signals, thresholds: Thresholds) -> list[Alert]:
    alerts: list[Alert] = []
    if signals.dead_letters_new > 0:
        alerts.append(
            Alert(
                "dead_letters_growing",
                "warning",
                "Tasks dead-lettered",
                f"{signals.dead_letters_new} tasks went to relai:dead-letters in the last 15 "
                "minutes: each took its workers down repeatedly; their requests failed and were "
                "refunded.",
            )
        )
    return alerts


def _webhooks(health: Health, thresholds: Thresholds, signals: Signals) -> list[Alert]:
    """Deliveries waiting too long, and endpoints newly disabled.

    An endpoint disabled is announced when it happens (within the look-back), not for as long
    as it stays disabled: a disabled endpoint is its owner's to re-enable or delete, and many
    never are, so an alert held while any is disabled would fire for good and hide the next
    one. What an operator acts on is a disabling, and above all many at once (our egress, the
    SSRF allow-list or a dispatcher gone wrong, not the receivers); the standing count is in
    ``/health`` and ``relai_webhook_disabled_endpoints``. Counts only: no URL, no user."""
    alerts: list[Alert] = []
    webhooks = health.webhooks
    age = webhooks.oldest_pending_age_seconds if webhooks else None
    if webhooks and age and age > thresholds.webhook_backlog_age_s:
        alerts.append(
            Alert(
                "webhook_backlog_old",
                "warning",
                "Webhook deliveries late",
                f"{webhooks.pending} webhook deliveries pending to {webhooks.destinations} "
                f"destinations, the oldest for {age:.0f}s (threshold "
                f"{thresholds.webhook_backlog_age_s:g}s); {webhooks.due} of them are due and "
                "wait for a dispatcher, the others for their next try after a failed one.",
            )
        )
    if signals.endpoints_disabled_new > 0:
        now = f"; {webhooks.endpoints_disabled} disabled in all" if webhooks else ""
        alerts.append(
            Alert(
                "webhook_endpoint_disabled",
                "warning",
                "Webhook endpoints disabled",
                f"{signals.endpoints_disabled_new} webhook endpoints were disabled in the last 15 "
                f"minutes after failing too long or answering 410 Gone{now}: they get no events "
                "until their owners enable them again.",
            )
        )
    return alerts


def _workers_absent(health: Health) -> str | None:
    """Work is waiting (tasks on the stream or requests unfinished) and no worker reads."""
    if health.streams is None:
        return None
    tasks = health.streams.get(TASKS_STREAM)
    waiting_tasks = tasks.length if tasks else 0
    unfinished = health.requests.count if health.requests else 0
    if not waiting_tasks and not unfinished:
        return None
    group = tasks.groups.get(TASKS_GROUP) if tasks else None
    if group is not None and group.live_consumers > 0:
        return None
    known = group.consumers if group else 0
    return (
        f"{waiting_tasks} tasks on {TASKS_STREAM} and {unfinished} requests unfinished, but no "
        f"consumer of group {TASKS_GROUP!r} has read in the last 10s ({known} known)."
    )


def _err(probe: object) -> str:
    return getattr(probe, "error", None) or "no answer"
