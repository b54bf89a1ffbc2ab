"""Webhook deliveries as recon reports them, from rows as the API and the dispatcher write them:
the gauges its sampler sets and the ``webhooks`` section of ``/health``, counts and ages only."""

import asyncio
from typing import Any

import asyncpg
import pytest
from prometheus_client import REGISTRY
from redis.asyncio import Redis

from libs.accounts import NewUser
from services.recon.metrics.service import MetricsSampler
from tests.integration.recon.conftest import recon, settings_for
from tests.integration.recon.webhook_rows import (
    ONE_OFF_URL,
    RECEIVER_URL,
    delivery,
    endpoint,
)
from tests.support import ServerUrls, create_user

OWNER = "zq-webhook-owner"


@pytest.fixture
async def owner(db_pool: "asyncpg.Pool[Any]") -> NewUser:
    return await create_user(db_pool, name=OWNER, credits=0)


async def some_of_everything(pool: "asyncpg.Pool[Any]", owner: NewUser) -> None:
    """3 pending (to 3 destinations, 1 due, the oldest waiting 600 s), 2 endpoints disabled,
    2 deliveries given up within the hour."""
    other = await create_user(pool, name="zq-other-owner", credits=0)
    live = await endpoint(pool, owner.id)
    theirs = await endpoint(pool, other.id)
    gone = await endpoint(pool, owner.id, enabled=False)
    await endpoint(pool, other.id, enabled=False)
    # Created two days ago, sent again 600 s ago: it has waited 600 s, not two days.
    await delivery(
        pool, owner.id, endpoint_id=live, waiting_s=600, created_s=172800, next_attempt_s=60
    )
    await delivery(pool, other.id, endpoint_id=theirs, waiting_s=30)  # due, no one holds it
    await delivery(pool, owner.id, url=ONE_OFF_URL, waiting_s=5, locked_s=30)  # being sent
    day = 86400
    await delivery(
        pool, owner.id, endpoint_id=live, status="failed", waiting_s=day, last_attempt_s=600
    )
    await delivery(pool, owner.id, endpoint_id=gone, status="failed", waiting_s=300)  # unsent
    await delivery(
        pool, owner.id, endpoint_id=live, status="failed", waiting_s=day, last_attempt_s=7200
    )
    await delivery(
        pool, owner.id, endpoint_id=live, status="delivered", waiting_s=20, last_attempt_s=10
    )


async def test_the_sampler_sets_the_webhook_gauges(
    db_pool: "asyncpg.Pool[Any]", redis_client: Redis, owner: NewUser
) -> None:
    await some_of_everything(db_pool, owner)
    sampler = MetricsSampler(
        db_pool, redis_client, interval_s=60, timeout_s=2, top_users=0, top_users_window_s=60
    )

    await sampler.sample()

    def value(name: str) -> float | None:
        return REGISTRY.get_sample_value(name)

    assert REGISTRY.get_sample_value("relai_recon_sample_success", {"source": "postgres"}) == 1
    assert value("relai_webhook_backlog") == 3
    assert 600 <= (value("relai_webhook_oldest_pending_age_seconds") or 0) < 660
    assert value("relai_webhook_disabled_endpoints") == 2
    assert value("relai_webhook_deliveries_failed_last_hour") == 2
    gauges = {
        "relai_webhook_backlog",
        "relai_webhook_oldest_pending_age_seconds",
        "relai_webhook_disabled_endpoints",
        "relai_webhook_deliveries_failed_last_hour",
    }
    webhook_series = [
        sample
        for family in REGISTRY.collect()
        if family.name in gauges
        for sample in family.samples
    ]
    assert {sample.name for sample in webhook_series} == gauges
    assert all(sample.labels == {} for sample in webhook_series)  # no user, no URL, ever

    await db_pool.execute("UPDATE webhook_deliveries SET status = 'delivered'")
    await sampler.sample()
    assert value("relai_webhook_backlog") == 0
    assert value("relai_webhook_oldest_pending_age_seconds") == 0


async def test_health_has_a_webhooks_section_without_urls_or_users(
    servers: ServerUrls, db_pool: "asyncpg.Pool[Any]", owner: NewUser
) -> None:
    await some_of_everything(db_pool, owner)

    async with recon(settings_for(servers, webhook_backlog_alert_s=300)) as client:
        response = await client.get("/health")

    assert response.status_code == 200
    body = response.json()
    webhooks = body["webhooks"]
    age = webhooks.pop("oldest_pending_age_seconds")
    assert 600 <= age < 660
    assert webhooks == {
        "pending": 3,
        "due": 1,
        "destinations": 3,
        "endpoints_disabled": 2,
        "failed_last_hour": 2,
    }
    (alert,) = [a for a in body["alerts"] if a["key"] == "webhook_backlog_old"]
    assert alert["detail"].startswith("3 webhook deliveries pending to 3 destinations")
    for secret in (RECEIVER_URL, ONE_OFF_URL, "receiver.example", "one-off.example", OWNER):
        assert secret not in response.text


async def test_webhooks_that_cannot_be_read_leave_health_available(
    servers: ServerUrls, db_pool: "asyncpg.Pool[Any]"
) -> None:
    # As if the database were not yet migrated to the webhooks schema.
    await db_pool.execute("ALTER TABLE webhook_deliveries RENAME TO webhook_deliveries_away")
    try:
        async with recon(settings_for(servers)) as client:
            response = await asyncio.wait_for(client.get("/health"), 10)
    finally:
        await db_pool.execute("ALTER TABLE webhook_deliveries_away RENAME TO webhook_deliveries")

    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["postgres"]["status"], body["webhooks"]) == ("ok", "ok", None)
    assert body["outbox"] == {"count": 0, "oldest_age_seconds": None}
