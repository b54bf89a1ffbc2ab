"""Recon's alerts as it posts them to Alertmanager: labelled by cause, renewed on every run,
resolved once cleared for the hold, posted again whole after a failure."""

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson

from services.recon.alerts.alertmanager import AlertmanagerNotifier, labels
from services.recon.alerts.rules import Alert

WORKERS = Alert("workers_absent", "critical", "No live workers", "3 tasks wait")
BUDGET = Alert("budget_nearly_spent:metered", "warning", "Budget of metered", "90%", 60.0)
START = datetime(2026, 1, 1, tzinfo=UTC)


class Fake:
    def __init__(self) -> None:
        self.tick = 0.0
        self.posts: list[list[dict[str, Any]]] = []
        self.status = 200

    def handle(self, request: httpx.Request) -> httpx.Response:
        assert (request.method, request.url.path) == ("POST", "/api/v2/alerts")
        self.posts.append(orjson.loads(request.content))
        return httpx.Response(self.status)

    def notifier(self, hold_s: float = 10.0) -> AlertmanagerNotifier:
        client = httpx.AsyncClient(transport=httpx.MockTransport(self.handle))
        return AlertmanagerNotifier(
            client=client,
            url="http://alertmanager:9093/",
            interval_s=5,
            hold_s=hold_s,
            clock=lambda: self.tick,
            now=lambda: START + timedelta(seconds=self.tick),
        )

    def ends(self, post: int) -> dict[str, float]:
        return {
            entry["labels"]["alertname"]: (
                datetime.fromisoformat(entry["endsAt"]) - START
            ).total_seconds()
            for entry in self.posts[post]
        }


def test_labels_name_the_cause_and_a_budgets_integration() -> None:
    assert labels(WORKERS) == {
        "alertname": "ReconWorkersAbsent",
        "cause": "workers_absent",
        "severity": "critical",
        "origin": "recon",
    }
    assert labels(BUDGET) == {
        "alertname": "ReconBudgetNearlySpent",
        "cause": "budget_nearly_spent",
        "severity": "warning",
        "origin": "recon",
        "integration": "metered",
    }


async def test_firing_alerts_are_renewed_each_run_and_resolved_after_the_hold() -> None:
    fake = Fake()
    notifier = fake.notifier(hold_s=10)

    await notifier.publish([WORKERS])
    (entry,) = fake.posts[0]
    assert entry["annotations"] == {"summary": "No live workers", "description": "3 tasks wait"}
    assert datetime.fromisoformat(entry["startsAt"]) == START
    assert fake.ends(0) == {"ReconWorkersAbsent": 20.0}  # four intervals ahead

    fake.tick = 5
    await notifier.publish([WORKERS])
    assert fake.ends(1) == {"ReconWorkersAbsent": 25.0}
    assert fake.posts[1][0]["startsAt"] == entry["startsAt"]

    fake.tick = 10
    await notifier.publish([])  # cleared: still firing through the hold
    fake.tick = 19
    await notifier.publish([])
    assert fake.ends(2) == {"ReconWorkersAbsent": 30.0}
    assert fake.ends(3) == {"ReconWorkersAbsent": 39.0}

    fake.tick = 20
    await notifier.publish([])  # ten seconds clear: resolved, ending now
    assert fake.ends(4) == {"ReconWorkersAbsent": 20.0}
    await notifier.publish([])
    assert len(fake.posts) == 5  # nothing left to post


async def test_an_alert_back_within_the_hold_stays_one_alert() -> None:
    fake = Fake()
    notifier = fake.notifier(hold_s=10)
    await notifier.publish([WORKERS])
    fake.tick = 5
    await notifier.publish([])
    fake.tick = 12
    await notifier.publish([WORKERS])
    fake.tick = 20
    await notifier.publish([])
    assert {post[0]["startsAt"] for post in fake.posts} == {START.isoformat()}
    assert fake.ends(3) == {"ReconWorkersAbsent": 40.0}  # cleared at 20: held again


async def test_a_budget_alert_is_held_for_its_own_longer_clear_time() -> None:
    fake = Fake()
    notifier = fake.notifier(hold_s=10)
    await notifier.publish([BUDGET])
    fake.tick = 1
    await notifier.publish([])
    fake.tick = 30
    await notifier.publish([])
    assert fake.ends(2) == {"ReconBudgetNearlySpent": 50.0}
    fake.tick = 61
    await notifier.publish([])
    assert fake.ends(3) == {"ReconBudgetNearlySpent": 61.0}


async def test_a_failed_post_is_made_again_whole_and_a_resolution_is_not_lost() -> None:
    fake = Fake()
    notifier = fake.notifier(hold_s=0)
    await notifier.publish([WORKERS, BUDGET])
    fake.status = 503
    fake.tick = 100
    await notifier.publish([BUDGET])  # workers resolved, not accepted
    fake.status = 200
    fake.tick = 101
    await notifier.publish([BUDGET])
    assert fake.ends(2) == {"ReconWorkersAbsent": 101.0, "ReconBudgetNearlySpent": 121.0}
    fake.tick = 102
    await notifier.publish([BUDGET])
    assert set(fake.ends(3)) == {"ReconBudgetNearlySpent"}


async def test_nothing_to_say_posts_nothing() -> None:
    fake = Fake()
    await fake.notifier().publish([])
    assert fake.posts == []
