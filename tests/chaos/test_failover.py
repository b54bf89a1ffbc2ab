"""``provider_failover``: one of a model's two servers killed under load. The jobs it was running
fail over to the other, it gets nothing new while it cools down, and nothing accepted is lost or
charged twice; the line after the figures gives the share each server served."""

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from cryptography.fernet import Fernet, MultiFernet
from redis.asyncio import Redis

from libs import config
from libs.accounts import NewUser
from libs.config.postgres import PostgresConfigStore
from tests.chaos.conftest import N
from tests.chaos.harness import Figures, Scenario, SteadyLoad
from tests.chaos.stack import ChaosStack, RedisServer
from tests.fakes.provider import FakeProvider, Reply, fake_provider
from tests.integration.dispatcher.receiver import Receiver
from tests.support import ServerUrls

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(300)]

QUIET_WITHIN_S = 120.0
BOOTSTRAP = Path(__file__).resolve().parents[2] / "config" / "worker.bootstrap.yaml"
SERVERS = ("model_a", "model_b")
"""The model's deployments (``chaos-llm`` in the chaos catalog), one fake server each."""


@pytest.fixture
async def model_servers() -> AsyncIterator[dict[str, FakeProvider]]:
    async with fake_provider() as a, fake_provider() as b:
        for fake in (a, b):
            # Long enough that the killed one has calls in flight.
            fake.script(*[Reply.ok(delay_s=0.3)] * (2 * N + 100))
        yield dict(zip(SERVERS, (a, b), strict=True))


@pytest.fixture
async def chaos_stack(
    servers: ServerUrls,
    chaos_user: NewUser,
    db_pool: "asyncpg.Pool[Any]",
    model_servers: dict[str, FakeProvider],
    tmp_path: Path,
) -> AsyncIterator[ChaosStack]:
    """The chaos stack, its workers following the central config ``worker``: one integration
    per model server."""
    store = PostgresConfigStore(db_pool, database_url=servers.database_url)
    lines = ["integrations:"]
    for name, fake in model_servers.items():
        lines += [f"  {name}:", f"    base_url: {fake.url}/v1"]
    fernet = MultiFernet([Fernet(Fernet.generate_key())])
    await config.upload(
        store,
        "worker",
        "\n".join(lines) + "\n",
        fernet=fernet,
        environ={},
        author="chaos",
        activate=True,
    )
    stack = ChaosStack(
        workdir=tmp_path,
        database_url=servers.database_url,
        redis=RedisServer(workdir=tmp_path),
        worker_env={"RELAI_CONFIG_FILE": str(BOOTSTRAP), "RELAI_CONFIG_KEY": ""},
    )
    try:
        await stack.start()
        yield stack
    finally:
        await stack.stop()


async def test_provider_failover(
    chaos_stack: ChaosStack,
    chaos_user: NewUser,
    stack_redis: Redis,
    receiver: Receiver,
    db_pool: "asyncpg.Pool[Any]",
    model_servers: dict[str, FakeProvider],
    report: list[str],
) -> None:
    killed = model_servers["model_a"]
    # Offered steadily: the server killed has served some and holds others when it dies.
    load = SteadyLoad(
        url=chaos_stack.url, api_key=chaos_user.api_key, path="/svc/chaos/model", n=N, rate=20
    )
    scenario = Scenario(
        name="provider_failover",
        load=load,
        pool=db_pool,
        redis=stack_redis,
        user_id=chaos_user.id,
        worker_logs=chaos_stack.worker_logs(),
        receiver=receiver,
    )
    calls_at_kill = 0

    async def kill_one_server_under_load(s: Scenario) -> None:
        nonlocal calls_at_kill
        await s.load.until_accepted(N // 3)
        async with asyncio.timeout(30):
            while len(killed.calls) - killed.in_flight < N // 10 or killed.in_flight == 0:
                await asyncio.sleep(0.005)
        calls_at_kill = len(killed.calls)
        s.extra["in_flight_at_kill"] = killed.in_flight
        await killed.kill()
        s.injected()

    figures: Figures = await scenario.run(kill_one_server_under_load, quiet_within_s=QUIET_WITHIN_S)
    served = dict(
        await db_pool.fetch(
            "SELECT deployment, count(*) FROM requests WHERE user_id = $1 GROUP BY 1",
            chaos_user.id,
        )
    )
    shares = " ".join(
        f"{name} {served.get(name, 0)} ({100 * served.get(name, 0) / N:.0f}%)" for name in SERVERS
    )
    report.append(figures.line())
    report.append(
        f"provider_failover served: {shares}; in flight on model_a when killed: "
        f"{scenario.extra['in_flight_at_kill']}"
    )

    assert (figures.lost, figures.double_charged) == (0, 0), figures.line()
    assert figures.accepted == N, f"refused: {dict(load.refused)}"
    assert (figures.completed, figures.failed) == (N, 0), figures.line()
    assert load.server_errors == 0
    assert figures.webhooks_missing == 0, figures.line()
    assert await scenario.wallet_matches_ledger()
    # Its calls in flight were answered by the other; after it died it answered nothing.
    assert served.get("model_b", 0) >= N - calls_at_kill
    assert sum(served.values()) == N
    assert len(killed.calls) == calls_at_kill
    assert scenario.extra["in_flight_at_kill"] > 0
    assert served.get("model_a", 0) >= N // 10
