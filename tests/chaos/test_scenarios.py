"""Each scenario: the real processes, N submissions over HTTP, one fault, quiescence, one line of
figures. Nothing accepted may be lost and nothing may be charged twice."""

import asyncio
import signal
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, cast

import asyncpg
import httpx
import pytest
from aiohttp import web
from redis.asyncio import Redis

from libs.accounts import NewUser
from libs.contracts import TASKS_STREAM
from libs.contracts.streams import MESSAGE_FIELD
from libs.streams import Entry
from tests.chaos.conftest import N
from tests.chaos.harness import Figures, Load, Scenario
from tests.chaos.stack import (
    MAX_CRASHES,
    VISIBILITY_TIMEOUT_S,
    WORKERS,
    ChaosStack,
    RedisServer,
)
from tests.integration.dispatcher.receiver import Received, Receiver, accept
from tests.scale_servers import SentinelSet

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(300)]

QUIET_WITHIN_S = 120.0

Fault = Callable[[ChaosStack, Scenario], Awaitable[None]]


async def kill_one_worker_holding_jobs(stack: ChaosStack, s: Scenario) -> None:
    await s.until_holding(stack.pid("worker-1"))
    stack.kill9("worker-1")
    s.injected()


async def kill_all_workers_restart_later(stack: ChaosStack, s: Scenario) -> None:
    await s.until_holding(stack.pid("worker-1"))
    for name in WORKERS:
        stack.kill9(name)
    s.injected()
    await asyncio.sleep(2)
    for name in WORKERS:
        stack.launch(name)


async def zombie_worker(stack: ChaosStack, s: Scenario) -> None:
    """Stopped past the visibility timeout: its jobs are reclaimed; then it wakes up and
    finishes them too, reporting for an attempt that may already be settled."""
    await s.until_holding(stack.pid("worker-1"))
    stack.signal("worker-1", signal.SIGSTOP)
    s.injected()
    await asyncio.sleep(VISIBILITY_TIMEOUT_S * 3)
    stack.signal("worker-1", signal.SIGCONT)


async def relay_crash_between_xadd_and_commit(stack: ChaosStack, s: Scenario) -> None:
    """The relay's crash window, injected: entries already on the stream are published again,
    exactly what a relay that crashed after its XADD and before its commit does on restart."""
    await s.load.until_accepted(N // 2)
    entries = cast(list[Entry], await s.redis.xrange(TASKS_STREAM, count=max(5, N // 5)))
    s.injected()
    for _entry_id, fields in entries:
        await s.redis.xadd(TASKS_STREAM, {MESSAGE_FIELD: fields[MESSAGE_FIELD]})


async def kill_api_while_submitting(stack: ChaosStack, s: Scenario) -> None:
    await s.load.until_accepted(N // 3)
    stack.kill9("api")
    s.injected()
    await asyncio.sleep(1)
    stack.launch("api")


async def restart_redis_empty(stack: ChaosStack, s: Scenario) -> None:
    await s.load.until_accepted(N // 2)
    await s.until_holding(stack.pid("worker-1"))
    s.injected()
    assert isinstance(stack.redis, RedisServer)
    await stack.redis.restart_empty(down_s=1.0)


async def trim_pending_entries(stack: ChaosStack, s: Scenario) -> None:
    """A tiny MAXLEN: entries are trimmed while delivered-but-unacknowledged or not yet read."""
    await s.until_holding(stack.pid("worker-1"))
    s.injected()
    for _ in range(10):
        await s.redis.xtrim(TASKS_STREAM, maxlen=2, approximate=False)
        await asyncio.sleep(0.2)


async def restart_postgres(stack: ChaosStack, s: Scenario) -> None:
    """Every connection to Postgres drops and new ones are refused for 3 s."""
    await s.load.until_accepted(N // 3)
    await stack.pg_proxy.cut()
    s.injected()
    await asyncio.sleep(3)
    await stack.pg_proxy.restore()


async def kill_results_consumer(stack: ChaosStack, s: Scenario) -> None:
    """The results consumer lives in the API: kill it while results are flowing."""
    await s.load.until_accepted(N)
    stack.kill9("api")
    s.injected()
    await asyncio.sleep(1)
    stack.launch("api")


async def provider_storm(stack: ChaosStack, s: Scenario) -> None:
    """The provider fails 40% of calls for the whole run (the ``chaos/storm`` offer)."""
    s.injected()


async def poison_task(stack: ChaosStack, s: Scenario) -> None:
    """One task among the others kills every worker that runs it; a supervisor (here: this
    fault) restarts dead workers. After two ordinary deliveries it runs in quarantine; after
    MAX_CRASHES fatal quarantined runs it is dead-lettered, failed and refunded, and nothing else
    is (the jobs that died beside it are not blamed)."""
    await s.load.until_accepted(N // 4)
    headers = {"Authorization": f"Bearer {s.load.api_key}"}
    async with httpx.AsyncClient(base_url=stack.url, headers=headers, timeout=10) as client:
        response = await client.post("/svc/chaos/poison", json={"text": "poison"})
    assert response.status_code == 202, response.text
    poison = uuid.UUID(response.json()["id"])
    s.injected()
    async with asyncio.timeout(QUIET_WITHIN_S):
        while await s.pool.fetchval("SELECT status FROM requests WHERE id = $1", poison) in (
            "pending",
            "running",
        ):
            for name in WORKERS:
                if stack.exited(name):
                    stack.launch(name)
            await asyncio.sleep(0.2)
    for name in WORKERS:  # the last death may come after the end was recorded
        if stack.exited(name):
            stack.launch(name)
    s.extra["poison"] = poison


async def webhook_receiver_down(stack: ChaosStack, s: Scenario) -> None:
    """The webhook receiver is gone (connections refused) while half the requests are accepted
    and end, then answers 503 for two seconds, then comes back: every event must still arrive,
    under one id however many times it was tried."""
    receiver = s.receiver
    await receiver.stop()
    s.injected()
    await s.load.until_accepted(N // 2)
    await asyncio.sleep(2)

    async def unavailable(_: Received) -> web.StreamResponse:
        return web.Response(status=503, headers={"Retry-After": "1"})

    receiver.answer = unavailable
    await receiver.start()
    await asyncio.sleep(2)
    receiver.answer = accept


async def kill9_redis_primary(stack: ChaosStack, s: Scenario) -> None:
    """Kill -9 the Redis primary while workers hold jobs; Sentinel promotes the replica
    (asynchronously replicated: the last writes may be gone) and every process follows."""
    assert isinstance(stack.redis, SentinelSet)
    await s.load.until_accepted(N // 2)
    await s.until_holding(stack.pid("worker-1"))
    s.injected()
    s.extra["promoted_in_s"] = await stack.redis.failover_by_kill9()


async def restart_pgbouncer(stack: ChaosStack, s: Scenario) -> None:
    """PgBouncer killed -9 and started again a second later: every pooled connection drops
    (the direct ones, LISTEN and leadership, stay)."""
    assert stack.pgbouncer is not None
    await s.load.until_accepted(N // 3)
    s.injected()
    await stack.pgbouncer.restart(down_s=1.0)


SCENARIOS: dict[str, tuple[str, Fault]] = {
    "worker_kill9": ("/svc/chaos/work", kill_one_worker_holding_jobs),
    "all_workers_kill9_restart": ("/svc/chaos/work", kill_all_workers_restart_later),
    "worker_zombie": ("/svc/chaos/work", zombie_worker),
    "relay_crash_after_xadd": ("/svc/chaos/work", relay_crash_between_xadd_and_commit),
    "api_kill9_during_submit": ("/svc/chaos/work", kill_api_while_submitting),
    "redis_restart_empty": ("/svc/chaos/work", restart_redis_empty),
    "stream_trimmed": ("/svc/chaos/work", trim_pending_entries),
    "postgres_restart": ("/svc/chaos/work", restart_postgres),
    "results_consumer_kill9": ("/svc/chaos/work", kill_results_consumer),
    "provider_storm": ("/svc/chaos/storm", provider_storm),
    "poison_task": ("/svc/chaos/work", poison_task),
    "webhook_receiver_down": ("/svc/chaos/work", webhook_receiver_down),
    "redis_failover": ("/svc/chaos/work", kill9_redis_primary),
    "pgbouncer_restart": ("/svc/chaos/work", restart_pgbouncer),
}


@pytest.mark.parametrize("name", list(SCENARIOS))
async def test_scenario(
    name: str,
    chaos_stack: ChaosStack,
    chaos_user: NewUser,
    stack_redis: Redis,
    receiver: Receiver,
    db_pool: "asyncpg.Pool[Any]",
    report: list[str],
) -> None:
    path, fault = SCENARIOS[name]
    load = Load(url=chaos_stack.url, api_key=chaos_user.api_key, path=path, n=N)
    scenario = Scenario(
        name=name,
        load=load,
        pool=db_pool,
        redis=stack_redis,
        user_id=chaos_user.id,
        worker_logs=chaos_stack.worker_logs(),
        receiver=receiver,
    )

    async def inject(s: Scenario) -> None:
        await fault(chaos_stack, s)

    figures: Figures = await scenario.run(inject, quiet_within_s=QUIET_WITHIN_S)
    report.append(figures.line())

    assert (figures.lost, figures.double_charged) == (0, 0), figures.line()
    assert figures.webhooks_missing == 0, figures.line()
    assert receiver.rejected == [], "a delivery failed verification"
    if name == "webhook_receiver_down":  # the fault was felt: deliveries were tried again
        retried = "SELECT count(*) FROM webhook_deliveries WHERE attempts > 1"
        assert await db_pool.fetchval(retried) > 0
    assert load.server_errors == 0, "a 5xx other than 503"
    assert figures.accepted == N, f"refused: {dict(load.refused)}"
    assert figures.completed + figures.failed == figures.accepted
    if name != "provider_storm":
        assert figures.failed == 0, figures.line()
    assert await scenario.wallet_matches_ledger()
    if "poison" in scenario.extra:
        row = await db_pool.fetchrow(
            "SELECT status, error FROM requests WHERE id = $1", scenario.extra["poison"]
        )
        assert row is not None
        assert row["status"] == "failed"
        assert f"{MAX_CRASHES} of them while it ran alone in quarantine" in row["error"]
        kinds = await db_pool.fetch(
            "SELECT kind FROM credit_ledger WHERE request_id = $1 ORDER BY id",
            scenario.extra["poison"],
        )
        assert [k["kind"] for k in kinds] == ["reserve", "refund"]
