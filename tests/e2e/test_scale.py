"""The real processes as they run past one machine: Postgres through PgBouncer in transaction
pooling mode (``DATABASE_URL``, the pools) with a direct URL for what needs a session
(``DATABASE_DIRECT_URL``: the relay's and the dispatcher's ``LISTEN``, the config watchers,
recon's leadership), and Redis through a Sentinel set (``REDIS_URL=redis+sentinel://``).

Submissions end, over the API, the relay, the workers and the results consumer; their webhooks
arrive; recon leads on a direct session; then the primary is killed -9, Sentinel promotes the
replica, and every process follows: the next submissions end too, on the caller's ``/ws`` as
well, and recon sweeps for what the new primary may have lost."""

import asyncio
import itertools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from websockets.asyncio.client import connect

from services.recon.alerts.leader import ALERTS_LOCK
from tests.e2e.conftest import Stack
from tests.integration.dispatcher.helpers import create_endpoint
from tests.integration.dispatcher.receiver import Receiver
from tests.scale_servers import PgBouncer, SentinelSet
from tests.support import ServerUrls

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

BATCH = 30


@pytest.fixture
def stack_recon() -> bool:
    return True


@pytest.fixture
async def sentinels(tmp_path: Path) -> AsyncIterator[SentinelSet]:
    servers = SentinelSet(workdir=tmp_path / "sentinel")
    try:
        await servers.start()
        yield servers
    finally:
        servers.stop()


@pytest.fixture
async def bouncer(servers: ServerUrls) -> AsyncIterator[PgBouncer]:
    pgbouncer = PgBouncer(servers.database_url, pool_size=10)
    try:
        await pgbouncer.start()
        yield pgbouncer
    finally:
        await pgbouncer.stop()


@pytest.fixture
def stack_env(
    stack_env: dict[str, str], servers: ServerUrls, sentinels: SentinelSet, bouncer: PgBouncer
) -> dict[str, str]:
    return {
        **stack_env,
        "DATABASE_URL": bouncer.url,
        "DATABASE_DIRECT_URL": servers.database_url,
        "REDIS_URL": sentinels.url,
        "RELAI_SSRF_ALLOW": '["127.0.0.1"]',
        "RELAI_WEBHOOK_RETRY_BASE_S": "0.2",
        "RELAI_WEBHOOK_RETRY_CAP_S": "1",
        "RELAI_RECON_ALERT_INTERVAL_S": "0.5",
        "RELAI_RECON_COMPLETION_INTERVAL_S": "0.5",
    }


async def _submit(client: httpx.AsyncClient, texts: list[str]) -> list[str]:
    async def one(text: str) -> str:
        for _ in range(100):  # a careful client: a refused connection or a 503 is retried
            try:
                r = await client.post("/svc/demo/echo", json={"text": text})
            except httpx.TransportError:
                await asyncio.sleep(0.1)
                continue
            if r.status_code == 202:
                return str(r.json()["id"])
            assert r.status_code == 503, r.text
            await asyncio.sleep(0.1)
        raise AssertionError(f"{text!r} never accepted")

    return list(await asyncio.gather(*(one(t) for t in texts)))


async def _until_ended(pool: "asyncpg.Pool[Any]", ids: list[str], timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while await pool.fetchval(
            "SELECT count(*) FROM requests WHERE id::text = ANY($1) AND status = 'succeeded'", ids
        ) < len(ids):
            await asyncio.sleep(0.1)


async def _recoveries(recon_url: str) -> int:
    async with httpx.AsyncClient(timeout=5) as client:
        body = (await client.get(f"{recon_url}/health")).json()
    return int(body["completion"]["redis_recoveries"])


async def test_through_pgbouncer_and_sentinel_every_process_works_and_follows_a_failover(
    stack: Stack,
    client: httpx.AsyncClient,
    db_pool: "asyncpg.Pool[Any]",
    sentinels: SentinelSet,
    bouncer: PgBouncer,
) -> None:
    receiver = Receiver()
    endpoint = await create_endpoint(
        db_pool, stack.user.id, receiver.url, events=["request.succeeded"]
    )
    receiver.secrets = [endpoint.secret]
    await receiver.start()
    try:
        first = await _submit(client, [f"before {n}" for n in range(BATCH)])
        await _until_ended(db_pool, first, timeout=30)

        # Recon leads the alerts on a direct session, held across its runs.
        holder = """
            SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND objid = $1 AND granted
            AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"""
        async with asyncio.timeout(15):
            while (leader := await db_pool.fetchval(holder, ALERTS_LOCK)) is None:
                await asyncio.sleep(0.1)
        await asyncio.sleep(1.5)
        assert await db_pool.fetchval(holder, ALERTS_LOCK) == leader
        assert stack.recon_url is not None
        recoveries = await _recoveries(stack.recon_url)

        promoted_in = await sentinels.failover_by_kill9()
        assert promoted_in < 20

        finals: set[str] = set()
        async with connect(f"{stack.ws_url}/ws", additional_headers=stack.headers) as ws:

            async def watch() -> None:
                async for raw in ws:
                    state = orjson.loads(raw)
                    if state["status"] == "succeeded":
                        finals.add(state["id"])

            watcher = asyncio.create_task(watch())
            try:
                # The hub resubscribes on the new primary (a half-second retry, more on a busy
                # machine): probe until one request's end arrives, then send the batch.
                async with asyncio.timeout(60):
                    for n in itertools.count(1):
                        probes = n
                        (probe,) = await _submit(client, [f"probe {n}"])
                        await _until_ended(db_pool, [probe], timeout=30)
                        await asyncio.sleep(1.0)
                        if probe in finals:
                            break
                second = await _submit(client, [f"after {n}" for n in range(BATCH)])
                await _until_ended(db_pool, second, timeout=60)
                async with asyncio.timeout(10):
                    while not set(second) <= finals:
                        await asyncio.sleep(0.05)
            finally:
                watcher.cancel()

        async with asyncio.timeout(15):  # recon swept for what the new primary may have lost
            while await _recoveries(stack.recon_url) <= recoveries:
                await asyncio.sleep(0.2)
        async with asyncio.timeout(30):
            while len({g.body for g in receiver.received if g.verified}) < 2 * BATCH + probes:
                await asyncio.sleep(0.1)
        assert receiver.rejected == []
        charged = await db_pool.fetchval(
            "SELECT count(*) FROM credit_ledger WHERE user_id = $1 AND kind = 'settle'",
            stack.user.id,
        )
        assert charged == 2 * BATCH + probes
        assert "prepared statement" not in bouncer.log.read_text()
        # Every process stops on SIGTERM in time, its clients closed.
        assert await asyncio.to_thread(stack.supervisor.stop) == []
    finally:
        await receiver.stop()
