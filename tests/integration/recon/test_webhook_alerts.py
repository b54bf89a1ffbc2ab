"""Recon's webhook alerts through its own alert loop, against rows as the dispatcher leaves them
and a local receiver: once per cool-down while they last, resolved when they are over."""

from typing import Any

import asyncpg
import httpx
import pytest
from redis.asyncio import Redis

from libs.accounts import NewUser
from services.recon.alerts.leader import Leadership
from services.recon.alerts.loop import LOOK_BACK_S, AlertLoop
from services.recon.alerts.rules import Thresholds
from tests.integration.recon.conftest import Clock, Receiver, alert_loop
from tests.integration.recon.webhook_rows import (
    ONE_OFF_URL,
    RECEIVER_URL,
    delivery,
    disable,
    endpoint,
)
from tests.support import create_user

OWNER = "zq-webhook-owner"


@pytest.fixture
async def owner(db_pool: "asyncpg.Pool[Any]") -> NewUser:
    return await create_user(db_pool, name=OWNER, credits=0)


@pytest.fixture
def loop(
    leaders: list[Leadership],
    db_pool: "asyncpg.Pool[Any]",
    redis_client: Redis,
    receiver: Receiver,
    webhook_client: httpx.AsyncClient,
    clock: Clock,
) -> AlertLoop:
    limits = Thresholds(outbox_age_s=30, stuck_age_s=86400, webhook_backlog_age_s=900)
    return alert_loop(leaders[0], db_pool, redis_client, receiver, webhook_client, clock, limits)


def contents(receiver: Receiver) -> list[str]:
    return [m["content"] for m in receiver.received]


def leaks(receiver: Receiver) -> list[str]:
    text = str(receiver.received)
    return [s for s in (RECEIVER_URL, ONE_OFF_URL, "example", OWNER) if s in text]


async def test_a_late_delivery_alerts_once_per_cooldown_and_resolves_when_delivered(
    loop: AlertLoop,
    clock: Clock,
    db_pool: "asyncpg.Pool[Any]",
    receiver: Receiver,
    owner: NewUser,
) -> None:
    target = await endpoint(db_pool, owner.id)
    late = await delivery(
        db_pool, owner.id, endpoint_id=target, waiting_s=800, attempts=4, next_attempt_s=300
    )
    await delivery(db_pool, owner.id, url=ONE_OFF_URL, waiting_s=10)
    assert await loop.run_once() == []  # 800 s: not yet past 900 s

    await db_pool.execute(
        "UPDATE webhook_deliveries SET retry_from = retry_from - interval '200 seconds' "
        "WHERE id = $1",
        late,
    )
    alerts = await loop.run_once()
    clock.now += 300
    await loop.run_once()  # within the cool-down: nothing new
    clock.now += 301
    await loop.run_once()
    await db_pool.execute(
        "UPDATE webhook_deliveries SET status = 'delivered', delivered_at = now() WHERE id = $1",
        late,
    )
    assert await loop.run_once() == []  # the other one waits 10 s: not late
    await loop.run_once()

    assert alerts is not None
    (alert,) = alerts
    assert (alert.key, alert.severity) == ("webhook_backlog_old", "warning")
    assert alert.detail.startswith("2 webhook deliveries pending to 2 destinations, the oldest")
    assert "s (threshold 900s); 1 of them are due and wait for a dispatcher" in alert.detail
    assert contents(receiver) == [
        "[WARNING] Webhook deliveries late",
        "[WARNING] Webhook deliveries late (still firing)",
        "[RESOLVED] Webhook deliveries late",
    ]
    assert leaks(receiver) == []


async def test_endpoints_disabled_since_the_last_look_alert_once_then_resolve(
    loop: AlertLoop,
    clock: Clock,
    db_pool: "asyncpg.Pool[Any]",
    receiver: Receiver,
    owner: NewUser,
) -> None:
    await endpoint(db_pool, owner.id, enabled=False)
    first = await endpoint(db_pool, owner.id)
    second = await endpoint(db_pool, owner.id)
    assert await loop.run_once() == []  # disabled before the first look: not news

    await disable(db_pool, first)
    await disable(db_pool, second)
    alerts = await loop.run_once()
    clock.now += 60
    assert [a.key for a in await loop.run_once() or []] == ["webhook_endpoint_disabled"]
    clock.now += LOOK_BACK_S
    assert await loop.run_once() == []  # none disabled in the last 15 minutes
    await db_pool.execute("UPDATE webhook_endpoints SET enabled = true WHERE id = $1", first)
    await loop.run_once()
    await disable(db_pool, first)  # disabled again: news again
    again = await loop.run_once()

    assert alerts is not None
    (alert,) = alerts
    assert (alert.key, alert.severity) == ("webhook_endpoint_disabled", "warning")
    assert alert.detail.startswith(
        "2 webhook endpoints were disabled in the last 15 minutes after failing too long or "
        "answering 410 Gone; 3 disabled in all"
    )
    assert [a.key for a in again or []] == ["webhook_endpoint_disabled"]
    assert (again or [])[0].detail.startswith("1 webhook endpoints were disabled")
    assert contents(receiver) == [
        "[WARNING] Webhook endpoints disabled",
        "[RESOLVED] Webhook endpoints disabled",
        "[WARNING] Webhook endpoints disabled",
    ]
    assert leaks(receiver) == []
