"""``soak_random_kills``: a steady offered load, with a random Relai process (the API, a worker,
recon) killed -9 every ``KILL_EVERY_S`` and started again, on the chaos suite's usual stack.

The same load first runs without faults for ``BASELINE_S`` (at most): the throughput under
faults is reported as a share of it (goal: at least 90 %). Nothing accepted may be lost or
charged twice, for the whole duration. ``RELAI_SOAK_S`` sets the duration (30 s by default,
600 with ``make soak``) and ``RELAI_SOAK_RATE`` the offered load (20 submissions a second)."""

import asyncio
import os
import random
import sys
from typing import Any

import asyncpg
import pytest
from redis.asyncio import Redis

from libs.accounts import NewUser
from tests.chaos.harness import Scenario, SteadyLoad
from tests.chaos.stack import WORKERS, ChaosStack
from tests.integration.dispatcher.receiver import Receiver

SOAK_S = float(os.environ.get("RELAI_SOAK_S", "30"))
RATE = float(os.environ.get("RELAI_SOAK_RATE", "20"))
KILL_EVERY_S = 15.0
BASELINE_S = min(SOAK_S / 3, 30.0)
GOAL = 0.90
VICTIMS = ("api", *WORKERS, "recon")

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(SOAK_S + BASELINE_S + 600)]


def _scenario(
    name: str,
    load: SteadyLoad,
    stack: ChaosStack,
    user: NewUser,
    redis: Redis,
    receiver: Receiver,
    pool: "asyncpg.Pool[Any]",
) -> Scenario:
    return Scenario(
        name=name,
        load=load,
        pool=pool,
        redis=redis,
        user_id=user.id,
        worker_logs=stack.worker_logs(),
        receiver=receiver,
    )


async def kill_every_interval(
    stack: ChaosStack, s: Scenario, pick: random.Random, kills: list[str]
) -> None:
    """A victim every KILL_EVERY_S while the load runs (none in its last seconds, which the
    baseline's own tail does not have either), started again at once."""
    while True:
        try:
            async with asyncio.timeout(KILL_EVERY_S):
                while not s.load.done:
                    await asyncio.sleep(0.1)
            return
        except TimeoutError:
            pass
        if s.load.sent >= s.load.n:
            return
        victim = pick.choice(VICTIMS)
        if s.injected_at is None:
            s.injected()
        for name in VICTIMS:  # a supervisor's part: whatever died is started again
            if stack.exited(name):
                stack.launch(name)
        await stack.kill9_and_restart(victim)
        kills.append(victim)


async def test_soak_random_kills(
    chaos_stack: ChaosStack,
    chaos_user: NewUser,
    stack_redis: Redis,
    receiver: Receiver,
    db_pool: "asyncpg.Pool[Any]",
    report: list[str],
) -> None:
    def load(prefix: str, seconds: float) -> SteadyLoad:
        return SteadyLoad(
            url=chaos_stack.url,
            api_key=chaos_user.api_key,
            path="/svc/chaos/work",
            n=int(RATE * seconds),
            rate=RATE,
            prefix=prefix,
        )

    async def no_fault(_: Scenario) -> None:
        return None

    baseline = _scenario(
        "soak_baseline",
        load("baseline", BASELINE_S),
        chaos_stack,
        chaos_user,
        stack_redis,
        receiver,
        db_pool,
    )
    calm = await baseline.run(no_fault, quiet_within_s=60)
    assert calm.lost == 0, calm.line()

    kills: list[str] = []
    pick = random.Random(os.environ.get("RELAI_SOAK_SEED"))

    async def killer(s: Scenario) -> None:
        await kill_every_interval(chaos_stack, s, pick, kills)

    soak = _scenario(
        "soak_random_kills",
        load("soak", SOAK_S),
        chaos_stack,
        chaos_user,
        stack_redis,
        receiver,
        db_pool,
    )
    figures = await soak.run(killer, quiet_within_s=180)
    share = soak.throughput() / baseline.throughput()
    report.append(figures.line())
    report.append(
        f"# soak_random_kills: {SOAK_S:.0f} s at {RATE:g}/s offered, {len(kills)} kills "
        f"({', '.join(f'{v} {kills.count(v)}' for v in VICTIMS if v in kills)}); "
        f"{soak.throughput():.1f} req/s ended under faults, {baseline.throughput():.1f} "
        f"without: {share:.0%}"
    )
    sys.stdout.flush()

    assert (figures.lost, figures.double_charged) == (0, 0), figures.line()
    assert figures.webhooks_missing == 0, figures.line()
    assert receiver.rejected == [], "a delivery failed verification"
    assert soak.load.server_errors == 0, "a 5xx other than 503"
    assert figures.accepted == soak.load.n, f"refused: {dict(soak.load.refused)}"
    assert figures.failed == 0, figures.line()
    assert kills, "no process was killed"
    assert await soak.wallet_matches_ledger()
    assert share >= GOAL, report[-1]
