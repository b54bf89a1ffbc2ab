"""Recon's /health against the real servers, through the app's own lifespan."""

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from redis.asyncio import Redis

from libs.contracts import (
    DEAD_LETTERS_STREAM,
    LIMITS_ACTIVE_KEY,
    LIMITS_KNOWN_KEY,
    LIMITS_LIVE_KEY,
    LIMITS_PREFIX,
    RESULTS_STREAM,
    TASKS_GROUP,
    TASKS_STREAM,
)
from libs.contracts.limits import conf_key, held_key, leases_key, running_key, spent_key
from libs.streams import ensure_group
from services.recon.health.budgets import read_budgets
from tests.integration.recon.conftest import closed_port, recon, settings_for
from tests.integration.worker.helpers import spend_through_a_limiter
from tests.support import ServerUrls, create_user, load_demo_catalog


async def test_healthy_and_idle(servers: ServerUrls) -> None:
    async with recon(settings_for(servers)) as client:
        response = await client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["postgres"]["status"] == "ok"
    assert body["redis"]["status"] == "ok"
    assert body["outbox"] == {"count": 0, "oldest_age_seconds": None}
    assert body["requests"] == {"count": 0, "oldest_age_seconds": None}
    for stream in (TASKS_STREAM, RESULTS_STREAM, DEAD_LETTERS_STREAM):
        assert body["streams"][stream] == {"status": "absent", "length": 0, "groups": {}}


async def test_reports_backlog_streams_and_oldest_unfinished_request(
    servers: ServerUrls, db_pool: "asyncpg.Pool[Any]", redis_client: Redis
) -> None:
    await db_pool.execute(
        """INSERT INTO outbox (stream, request_id, payload, created_at)
           VALUES ($1, $2, '{}', now() - interval '30 seconds'), ($1, $3, '{}', now())""",
        TASKS_STREAM,
        uuid.uuid4(),
        uuid.uuid4(),
    )
    await load_demo_catalog(db_pool)
    user = await create_user(db_pool, name="ada", credits=10)
    offer_id = await db_pool.fetchval("SELECT id FROM offers WHERE action = 'echo'")
    for status, age in (("pending", 90), ("running", 20), ("succeeded", 500)):
        await db_pool.execute(
            """INSERT INTO requests (id, user_id, offer_id, inputs, prompt, price, status,
                                     created_at)
               VALUES ($1, $2, $3, '{}', 'p', 1, $4, now() - make_interval(secs => $5))""",
            uuid.uuid4(),
            user.id,
            offer_id,
            status,
            float(age),
        )
    await ensure_group(redis_client, TASKS_STREAM, TASKS_GROUP)
    for n in range(3):
        await redis_client.xadd(TASKS_STREAM, {b"m": str(n).encode()})
    await redis_client.xreadgroup(TASKS_GROUP, "worker-1", {TASKS_STREAM: ">"}, count=1)
    await redis_client.xadd(DEAD_LETTERS_STREAM, {b"m": b"poison", b"reason": b"crashed"})

    async with recon(settings_for(servers)) as client:
        response = await client.get("/health")

    assert response.status_code == 200
    body = response.json()
    assert body["outbox"]["count"] == 2
    assert 30 <= body["outbox"]["oldest_age_seconds"] < 60
    assert body["requests"]["count"] == 2
    assert 90 <= body["requests"]["oldest_age_seconds"] < 120
    assert body["streams"][TASKS_STREAM] == {
        "status": "present",
        "length": 3,
        "groups": {TASKS_GROUP: {"pending": 1, "consumers": 1, "live_consumers": 1, "lag": 2}},
    }
    assert body["streams"][RESULTS_STREAM]["status"] == "absent"
    assert body["streams"][DEAD_LETTERS_STREAM] == {"status": "present", "length": 1, "groups": {}}


async def test_recon_reads_the_budget_a_worker_spends_under_the_keys_the_contract_names(
    servers: ServerUrls, redis_client: Redis
) -> None:
    """The worker's scripts (park, take) and recon's (budgets) address the same keys: those of
    ``libs.contracts.limits``, and no other."""
    await ensure_group(redis_client, TASKS_STREAM, TASKS_GROUP)
    before_ms = _ms(await redis_client.time())
    message = await spend_through_a_limiter(redis_client, integration="metered", of=10, cost=4)
    after_ms = _ms(await redis_client.time())

    budget = (await read_budgets(redis_client))["metered"]
    assert (budget.budget, budget.spent, budget.window_seconds) == (10, 4, 3600)
    assert 0 < budget.resets_in_seconds <= 3600

    window_ms = 3600 * 1000
    spent = {spent_key("metered", t // window_ms) for t in (before_ms, after_ms)}
    written = {_text(k) async for k in redis_client.scan_iter(match=f"{LIMITS_PREFIX}*")}
    per_integration = {leases_key("metered"), held_key("metered"), conf_key("metered")}
    per_integration.add(running_key("metered", "-"))  # the running lease of its (anonymous) user
    shared = {LIMITS_ACTIVE_KEY, LIMITS_KNOWN_KEY, LIMITS_LIVE_KEY}
    assert written - spent == per_integration | shared  # the waiting lists emptied and went
    assert len(written & spent) == 1
    assert await redis_client.smembers(LIMITS_KNOWN_KEY) == {b"metered"}
    assert await redis_client.smembers(LIMITS_LIVE_KEY) == {str(message.request_id).encode()}


def _ms(time: tuple[int, int]) -> int:
    return time[0] * 1000 + time[1] // 1000


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def test_unreachable_redis_is_503(servers: ServerUrls) -> None:
    port = closed_port()
    settings = settings_for(servers, redis_url=f"redis://127.0.0.1:{port}/0")
    async with recon(settings) as client:
        response = await client.get("/health")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["postgres"]["status"] == "ok"
    assert body["redis"]["status"] == "error"
    assert body["redis"]["error"].startswith("unreachable (")
    # The attack: an unauthenticated caller learns internal addresses from the error text.
    assert "127.0.0.1" not in response.text
    assert str(port) not in response.text
    assert body["streams"] is None
    assert body["outbox"]["count"] == 0


async def test_unreachable_postgres_is_503_and_recon_still_starts(servers: ServerUrls) -> None:
    settings = settings_for(
        servers, database_url=f"postgresql://postgres@127.0.0.1:{closed_port()}/relai"
    )
    async with recon(settings) as client:
        response = await client.get("/health")
    assert response.status_code == 503
    body = response.json()
    assert body["postgres"]["status"] == "error"
    assert body["redis"]["status"] == "ok"
    assert body["outbox"] is None


def test_relai_recon_serves_health_and_stops_on_sigterm(servers: ServerUrls) -> None:
    port = closed_port()
    env = {
        **os.environ,
        "DATABASE_URL": servers.database_url,
        "REDIS_URL": servers.redis_url,
        "RELAI_RECON_PORT": str(port),
    }
    script = Path(sys.executable).parent / "relai-recon"
    process = subprocess.Popen([str(script)], env=env, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except httpx.TransportError:
                assert process.poll() is None, "relai-recon exited"
                assert time.monotonic() < deadline, "relai-recon did not answer"
                time.sleep(0.2)
        assert response.status_code == 200
        assert response.json()["status"] == "ok"
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=15)
    # uvicorn shuts down gracefully, then re-raises the signal so the exit tells why it ended.
    assert process.returncode in (0, -signal.SIGTERM)
    assert b"Application shutdown complete" in stderr
    assert b'"service": "recon"' in stderr
