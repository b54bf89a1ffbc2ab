"""Recon's metrics port: the pipeline's backlog (webhook deliveries included) and the top
spenders, scraped over HTTP from the real ``relai-recon`` process."""

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from libs.contracts import TASKS_GROUP, TASKS_STREAM
from libs.streams import ensure_group
from tests.integration.api.conftest import free_port
from tests.integration.recon.webhook_rows import ONE_OFF_URL, delivery
from tests.integration.worker.helpers import spend_through_a_limiter
from tests.support import ServerUrls, create_user, load_demo_catalog

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def _settle(pool: "asyncpg.Pool[Any]", user_id: uuid.UUID, amount: int, age_s: float) -> None:
    offer_id = await pool.fetchval("SELECT id FROM offers WHERE action = 'echo'")
    request_id = uuid.uuid4()
    await pool.execute(
        """INSERT INTO requests (id, user_id, offer_id, inputs, prompt, price, status)
           VALUES ($1, $2, $3, '{}', 'p', $4, 'succeeded')""",
        request_id,
        user_id,
        offer_id,
        amount,
    )
    await pool.execute(
        """INSERT INTO credit_ledger (user_id, request_id, kind, amount, created_at)
           VALUES ($1, $2, 'settle', $3, now() - make_interval(secs => $4))""",
        user_id,
        request_id,
        amount,
        age_s,
    )


SAMPLED = {
    ("relai_recon_sample_success", frozenset({("source", source)}))
    for source in ("postgres", "redis")
}


async def _scrape_sampled(url: str, timeout: float) -> Samples:
    """The metrics once recon has sampled both Postgres and Redis."""
    async with httpx.AsyncClient(timeout=2) as client, asyncio.timeout(timeout):
        while True:
            try:
                r = await client.get(url)
            except httpx.TransportError:
                await asyncio.sleep(0.2)
                continue
            samples = {
                (s.name, frozenset(s.labels.items())): s.value
                for family in text_string_to_metric_families(r.text)
                for s in family.samples
            }
            if SAMPLED <= samples.keys():
                return samples
            await asyncio.sleep(0.2)


async def test_recon_exports_backlog_streams_and_top_spenders(
    servers: ServerUrls, db_pool: "asyncpg.Pool[Any]", redis_client: Redis
) -> None:
    await load_demo_catalog(db_pool)
    ada = await create_user(db_pool, name="ada", credits=0)
    bob = await create_user(db_pool, name="bob", credits=0)
    cy = await create_user(db_pool, name="cy", credits=0)
    await _settle(db_pool, ada.id, 5, age_s=10)
    await _settle(db_pool, ada.id, 4, age_s=20)
    await _settle(db_pool, bob.id, 7, age_s=30)
    await _settle(db_pool, cy.id, 100, age_s=7200)  # outside the window
    await _settle(db_pool, cy.id, 1, age_s=5)
    await db_pool.execute(
        """INSERT INTO outbox (stream, request_id, payload, created_at)
           VALUES ($1, $2, '{}', now() - interval '30 seconds')""",
        TASKS_STREAM,
        uuid.uuid4(),
    )
    await delivery(db_pool, ada.id, url=ONE_OFF_URL, waiting_s=45)
    await ensure_group(redis_client, TASKS_STREAM, TASKS_GROUP)
    await spend_through_a_limiter(redis_client, integration="metered", of=10, cost=4)
    for n in range(3):
        await redis_client.xadd(TASKS_STREAM, {b"m": str(n).encode()})
    await redis_client.xreadgroup(TASKS_GROUP, "worker-1", {TASKS_STREAM: ">"}, count=1)

    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": servers.database_url,
        "REDIS_URL": servers.redis_url,
        "RELAI_RECON_PORT": str(free_port()),
        "RELAI_RECON_METRICS_PORT": str(port),
        "RELAI_RECON_METRICS_INTERVAL_S": "0.2",
        "RELAI_RECON_TOP_USERS": "2",
        "RELAI_RECON_TOP_USERS_WINDOW_S": "3600",
    }
    script = Path(sys.executable).parent / "relai-recon"
    process = subprocess.Popen([str(script)], env=env, stderr=subprocess.DEVNULL)
    try:
        samples = await _scrape_sampled(f"http://127.0.0.1:{port}/metrics", timeout=30)
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.to_thread(process.wait, 15)

    def value(name: str, **labels: str) -> float | None:
        return samples.get((name, frozenset(labels.items())))

    assert value("relai_outbox_backlog") == 1
    assert 30 <= (value("relai_outbox_oldest_age_seconds") or 0) < 60
    assert value("relai_webhook_backlog") == 1
    assert 45 <= (value("relai_webhook_oldest_pending_age_seconds") or 0) < 75
    assert value("relai_webhook_disabled_endpoints") == 0
    assert value("relai_stream_length", stream=TASKS_STREAM) == 3
    group = {"stream": TASKS_STREAM, "group": TASKS_GROUP}
    assert value("relai_stream_group_pending", **group) == 1
    assert value("relai_stream_group_lag", **group) == 2
    assert value("relai_stream_group_consumers", **group) == 1
    assert value("relai_recon_sample_success", source="postgres") == 1
    assert value("relai_recon_sample_success", source="redis") == 1
    # The two top spenders of the last hour, and no one else: the label set stays bounded.
    top = {
        dict(labels)["user"]: v
        for (name, labels), v in samples.items()
        if name == "relai_user_spend_top_credits"
    }
    assert top == {"ada": 9, "bob": 7}
    assert value("relai_integration_budget_credits", integration="metered") == 10
    assert value("relai_integration_budget_spent_credits", integration="metered") == 4
