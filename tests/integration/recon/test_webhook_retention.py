"""Webhook retention: finished deliveries past ``RELAI_WEBHOOK_RETENTION_S`` go, with their
attempts; pending ones stay however old; two replicas at once delete each one once."""

import asyncio
import uuid
from typing import Any

import asyncpg
import pytest

from libs.accounts import NewUser
from libs.db import create_pool
from services.recon.webhooks.service import WebhookRetentionLoop
from tests.integration.recon.webhook_rows import ONE_OFF_URL, delivery, endpoint
from tests.support import ServerUrls, create_user

WEEK = 604800


@pytest.fixture
async def owner(db_pool: "asyncpg.Pool[Any]") -> NewUser:
    return await create_user(db_pool, name="zq-webhook-owner", credits=0)


def retention(pool: "asyncpg.Pool[Any]", batch: int = 100) -> WebhookRetentionLoop:
    return WebhookRetentionLoop(pool, interval_s=60, retention_s=WEEK, batch=batch)


async def remaining(pool: "asyncpg.Pool[Any]") -> set[uuid.UUID]:
    return {r["id"] for r in await pool.fetch("SELECT id FROM webhook_deliveries")}


async def attempts_of(pool: "asyncpg.Pool[Any]") -> set[uuid.UUID]:
    rows = await pool.fetch("SELECT DISTINCT delivery_id FROM webhook_attempts")
    return {r["delivery_id"] for r in rows}


async def test_only_finished_deliveries_past_retention_go_with_their_attempts(
    db_pool: "asyncpg.Pool[Any]", owner: NewUser
) -> None:
    target = await endpoint(db_pool, owner.id)
    old, recent = WEEK + 3600, WEEK - 3600

    async def made(**fields: Any) -> uuid.UUID:
        return await delivery(db_pool, owner.id, endpoint_id=target, attempts=2, **fields)

    old_delivered = await made(status="delivered", waiting_s=old + 60, last_attempt_s=old)
    old_failed = await made(status="failed", waiting_s=old + 86400, last_attempt_s=old)
    old_unsent = await delivery(  # failed unsent when its endpoint was disabled
        db_pool, owner.id, url=ONE_OFF_URL, status="failed", waiting_s=old
    )
    never_tried = await delivery(db_pool, owner.id, url=ONE_OFF_URL, waiting_s=old * 3)
    kept = {
        never_tried,
        await made(status="delivered", waiting_s=recent + 60, last_attempt_s=recent),
        await made(status="failed", waiting_s=old, last_attempt_s=recent),
        # Created long ago, sent again lately: it finished when it was delivered again.
        await made(
            status="delivered", created_s=old * 2, waiting_s=recent + 5, last_attempt_s=recent
        ),
        # Pending however old: never deleted.
        await made(status="pending", waiting_s=old * 2, last_attempt_s=old, next_attempt_s=60),
    }
    loop = retention(db_pool)

    deleted = await loop.run_once()
    assert await loop.run_once() == 0

    assert deleted == 3
    assert await remaining(db_pool) == kept
    assert {old_delivered, old_failed, old_unsent}.isdisjoint(kept)
    assert await attempts_of(db_pool) == kept - {never_tried}


async def test_two_replicas_at_once_delete_each_delivery_once(
    servers: ServerUrls, db_pool: "asyncpg.Pool[Any]", owner: NewUser
) -> None:
    target = await endpoint(db_pool, owner.id)
    old = WEEK + 60
    await db_pool.execute(
        """INSERT INTO webhook_deliveries (id, user_id, endpoint_id, event, payload, status,
                                           retry_from, created_at, last_attempt_at)
           SELECT gen_random_uuid(), $1, $2, 'request.succeeded', '{}',
                  CASE WHEN g % 3 = 0 THEN 'failed' ELSE 'delivered' END,
                  now() - make_interval(secs => $3 + g), now() - make_interval(secs => $3 + g),
                  now() - make_interval(secs => $3 + g)
           FROM generate_series(1, 3000) g""",
        owner.id,
        target,
        old,
    )
    await db_pool.execute(
        "INSERT INTO webhook_attempts (delivery_id, n, status_code, latency_ms) "
        "SELECT id, 1, 200, 5 FROM webhook_deliveries"
    )
    pending = await delivery(db_pool, owner.id, endpoint_id=target, waiting_s=old * 2)
    pools = [await create_pool(servers.database_url, min_size=1, max_size=2) for _ in range(2)]
    try:
        loops = [retention(pool, batch=50) for pool in pools]
        counts = await asyncio.gather(*(loop.run_once() for loop in loops))
    finally:
        for pool in pools:
            await pool.close()

    assert sum(counts) == 3000
    assert all(count > 0 for count in counts), counts  # both took a share
    assert await remaining(db_pool) == {pending}
    assert await attempts_of(db_pool) == set()
