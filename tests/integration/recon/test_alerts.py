"""Alerts against the real servers and a local webhook receiver: what the receiver gets, once
per condition and cool-down, from one replica only."""

import asyncio
import contextlib
import gc
import time
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from redis.asyncio import Redis

from libs.contracts import DEAD_LETTERS_STREAM, TASKS_GROUP, TASKS_STREAM
from libs.streams import ensure_group
from services.recon.alerts.leader import Leadership
from services.recon.alerts.loop import AlertLoop
from services.recon.alerts.notifier import WebhookNotifier
from services.recon.alerts.notifier import webhook_client as alert_client
from services.recon.alerts.rules import Alert
from tests.integration.config.conftest import follow_config
from tests.integration.recon.conftest import Clock, Receiver, alert_loop, recon, settings_for
from tests.integration.worker.helpers import add_tasks, running, task, wait_finals
from tests.support import ServerUrls


@pytest.fixture
def loop(
    leaders: list[Leadership],
    db_pool: "asyncpg.Pool[Any]",
    redis_client: Redis,
    receiver: Receiver,
    webhook_client: httpx.AsyncClient,
    clock: Clock,
) -> AlertLoop:
    """The alert loop of the first replica, posting to ``receiver`` on ``clock``."""
    return alert_loop(leaders[0], db_pool, redis_client, receiver, webhook_client, clock)


async def stalled_outbox(pool: "asyncpg.Pool[Any]") -> None:
    await pool.execute(
        "INSERT INTO outbox (stream, request_id, payload, created_at) "
        "VALUES ($1, $2, '{}', now() - interval '45 seconds')",
        TASKS_STREAM,
        uuid.uuid4(),
    )


async def test_relay_stalled_fires_once_repeats_after_cooldown_and_resolves(
    loop: AlertLoop, clock: Clock, db_pool: "asyncpg.Pool[Any]", receiver: Receiver
) -> None:
    await stalled_outbox(db_pool)
    alerts = await loop.run_once()
    clock.now += 300
    await loop.run_once()
    clock.now += 301
    await loop.run_once()
    await db_pool.execute("DELETE FROM outbox")
    await loop.run_once()
    await loop.run_once()

    assert alerts is not None
    assert [a.key for a in alerts] == ["relay_stalled"]
    assert [m["content"] for m in receiver.received] == [
        "[CRITICAL] Outbox relay stalled",
        "[CRITICAL] Outbox relay stalled (still firing)",
        "[RESOLVED] Outbox relay stalled",
    ]
    first = receiver.received[0]
    assert first["username"] == "Relai recon"
    (embed,) = first["embeds"]
    assert embed["title"] == "Outbox relay stalled"
    assert "1 outbox rows unpublished" in embed["description"]
    assert {f["name"]: f["value"] for f in embed["fields"]} == {
        "alert": "relay_stalled",
        "severity": "critical",
        "status": "firing",
    }
    assert receiver.received[2]["embeds"][0]["color"] == 0x2ECC71


async def test_failed_delivery_is_tried_again_next_run(
    loop: AlertLoop, db_pool: "asyncpg.Pool[Any]", receiver: Receiver
) -> None:
    await stalled_outbox(db_pool)
    receiver.status = 500
    await loop.run_once()
    receiver.status = 204
    await loop.run_once()
    await loop.run_once()

    assert [m["content"] for m in receiver.received] == ["[CRITICAL] Outbox relay stalled"] * 2


async def test_a_webhook_at_a_private_address_gets_nothing_unless_allowed(
    leaders: list[Leadership],
    db_pool: "asyncpg.Pool[Any]",
    redis_client: Redis,
    receiver: Receiver,
    clock: Clock,
) -> None:
    await stalled_outbox(db_pool)
    async with alert_client([]) as guarded:
        refused = alert_loop(leaders[0], db_pool, redis_client, receiver, guarded, clock)
        await refused.run_once()
        await refused.run_once()
    assert receiver.received == []


async def test_only_the_leading_replica_alerts_and_another_takes_over(
    leaders: list[Leadership],
    db_pool: "asyncpg.Pool[Any]",
    redis_client: Redis,
    receiver: Receiver,
    webhook_client: httpx.AsyncClient,
) -> None:
    first = alert_loop(leaders[0], db_pool, redis_client, receiver, webhook_client, Clock())
    second = alert_loop(leaders[1], db_pool, redis_client, receiver, webhook_client, Clock())
    await stalled_outbox(db_pool)
    assert await first.run_once() is not None
    assert await second.run_once() is None
    await leaders[0].release()  # the leader's process died: its session ended
    taken = await second.run_once()

    assert taken is not None
    assert [a.key for a in taken] == ["relay_stalled"]
    assert len(receiver.received) == 2  # the new leader does not know what the old one sent


async def test_recon_stopping_at_any_moment_of_a_leadership_check_leaves_no_connection(
    servers: ServerUrls,
) -> None:
    """Cancelled between connecting and taking the lock, the connection used to be left to the
    garbage collector (an unclosed-connection warning in whichever test ran next)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for step in range(120):
            leadership = Leadership(servers.database_url)
            check = asyncio.create_task(leadership.is_leader())
            await asyncio.sleep(step * 0.0001)
            check.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await check
            await leadership.release()
        gc.collect()
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []


async def test_workers_absent_while_tasks_wait_and_health_lists_it(
    servers: ServerUrls, redis_client: Redis
) -> None:
    await ensure_group(redis_client, TASKS_STREAM, TASKS_GROUP)
    await redis_client.xadd(TASKS_STREAM, {b"m": b"{}"})

    async with recon(settings_for(servers)) as client:
        body = (await client.get("/health")).json()

    assert [(a["key"], a["severity"]) for a in body["alerts"]] == [("workers_absent", "critical")]
    assert body["streams"][TASKS_STREAM]["groups"][TASKS_GROUP]["live_consumers"] == 0


async def test_dead_letters_since_the_last_look_raise_an_alert(
    loop: AlertLoop, redis_client: Redis, receiver: Receiver
) -> None:
    await redis_client.xadd(DEAD_LETTERS_STREAM, {b"m": b"{}"})
    assert await loop.run_once() == []  # what was there before the first look is not news
    await redis_client.xadd(DEAD_LETTERS_STREAM, {b"m": b"{}"})

    alerts = await loop.run_once()

    assert alerts is not None
    assert [a.key for a in alerts] == ["dead_letters_growing"]
    assert [m["content"] for m in receiver.received] == ["[WARNING] Tasks dead-lettered"]


async def test_a_budget_spent_by_real_jobs_warns_once_and_health_shows_it(
    servers: ServerUrls, loop: AlertLoop, redis_client: Redis, receiver: Receiver
) -> None:
    metered: dict[str, Any] = {"integration": "metered", "budget": 10, "window_s": 3600, "cost": 3}
    async with running(redis_client):
        await add_tasks(redis_client, [task(prompt=f"m{i}", **metered) for i in range(2)])
        await wait_finals(redis_client, 2)
    assert await loop.run_once() == []  # 6 of 10: 60 %

    async with running(redis_client):
        await add_tasks(redis_client, [task(prompt="m2", **metered)])
        await wait_finals(redis_client, 3)
    alerts = await loop.run_once()
    await loop.run_once()
    async with recon(settings_for(servers)) as client:
        body = (await client.get("/health")).json()

    assert alerts is not None
    assert [a.key for a in alerts] == ["budget_nearly_spent:metered"]
    assert [m["content"] for m in receiver.received] == ["[WARNING] Budget of metered nearly spent"]
    assert "spent 9 of its 10 credits for this 3600s window (90%" in alerts[0].detail
    budget = body["budgets"]["metered"]
    assert (budget["budget"], budget["spent"], budget["window_seconds"]) == (10, 9, 3600)
    assert 0 < budget["resets_in_seconds"] <= 3600
    assert "budget_nearly_spent:metered" in [a["key"] for a in body["alerts"]]


async def test_alerts_follow_the_active_recon_config(
    servers: ServerUrls,
    db_pool: "asyncpg.Pool[Any]",
    receiver: Receiver,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    followed = await follow_config(
        "recon", servers=servers, pool=db_pool, tmp_path=tmp_path, monkeypatch=monkeypatch
    )
    store = followed.store
    other = receiver.url.replace("/hook", "/other")
    for url, cooldown in ((receiver.url, 600), (other, 0)):
        await followed.upload(
            "recon",
            f"alerts:\n  ~webhook_url: {url}\n  outbox_age_s: 20\n  cooldown_s: {cooldown}\n",
        )
    await store.activate("recon", "1", author="ops")
    await stalled_outbox(db_pool)  # 45 s old: past the config's 20 s, not the settings' hour
    settings = settings_for(
        servers,
        config_file=followed.bootstrap,
        config_poll_s=30.0,
        recon_alert_interval_s=0.1,
        recon_alert_outbox_age_s=3600,
        ssrf_allow=["127.0.0.1"],
    )

    async with recon(settings) as client:
        await _until(lambda: receiver.paths == ["/hook"], "no alert reached the config's webhook")
        body = (await client.get("/health")).json()
        await store.activate("recon", "2", author="ops")
        await _until(lambda: "/other" in receiver.paths, "the new webhook never got the alert")

    assert receiver.received[0]["content"] == "[CRITICAL] Outbox relay stalled"
    assert "relay_stalled" in [a["key"] for a in body["alerts"]]
    assert receiver.received[-1]["content"] == "[CRITICAL] Outbox relay stalled (still firing)"
    stored = await db_pool.fetch("SELECT document FROM config_versions")
    assert len(stored) == 2
    assert not any(receiver.url.split("/hook")[0] in r["document"] for r in stored)


async def _until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 10
    while not check():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.05)


async def test_a_budget_alert_resolves_only_after_a_whole_window_below_the_threshold(
    receiver: Receiver, webhook_client: httpx.AsyncClient, clock: Clock
) -> None:
    notifier = WebhookNotifier(client=webhook_client, clock=clock)
    nearly = Alert("budget_nearly_spent:x", "warning", "Budget of x nearly spent", "90%", 60.0)

    async def run(*alerts: Alert, after: float) -> None:
        clock.now += after
        await notifier.publish(list(alerts), url=receiver.url, cooldown_s=600)

    await run(nearly, after=0)
    await run(after=10)  # a new window began: not over yet
    await run(nearly, after=20)  # nearly spent again within the hold: the same incident
    await run(after=5)  # clear again: the hold starts over
    await run(after=59)
    assert [m["content"] for m in receiver.received] == ["[WARNING] Budget of x nearly spent"]
    await run(after=1)  # a whole window below the threshold
    assert [m["content"] for m in receiver.received][1:] == ["[RESOLVED] Budget of x nearly spent"]
