"""Deployments' caps held across real worker processes following the central config, and a job
whose worker was killed routed again by the worker that reclaims it."""

import asyncio
import signal
import time
from pathlib import Path
from typing import Any

import asyncpg
from redis.asyncio import Redis

from libs.contracts import TASKS_GROUP, TASKS_STREAM
from libs.contracts.models import Deployment, inflight_key
from tests.fakes.provider import Reply, fake_provider
from tests.integration.worker.helpers import finals, read_results
from tests.integration.worker.processes import consumers_reading, worker_process
from tests.integration.worker.routing_support import configure, job, route, run_all, served
from tests.support import ServerUrls

BOOTSTRAP = Path(__file__).resolve().parents[3] / "config" / "worker.bootstrap.yaml"
WORKER = {
    "RELAI_CONFIG_FILE": str(BOOTSTRAP),
    "RELAI_CONFIG_KEY": "",
    "RELAI_WORKER_CONCURRENCY": "4",
    "RELAI_WORKER_VISIBILITY_TIMEOUT_S": "1",
    "RELAI_WORKER_RECLAIM_INTERVAL_S": "0.2",
}


async def test_caps_hold_across_worker_processes_and_a_killed_ones_jobs_route_again(
    servers: ServerUrls, db_pool: "asyncpg.Pool[Any]", redis_client: Redis
) -> None:
    async with fake_provider() as big, fake_provider() as small:
        for fake in (big, small):
            fake.script(*[Reply.ok(delay_s=0.2)] * 100)
        await configure(servers, db_pool, {"big": big, "small": small})
        the_route = route(
            Deployment(integration="big", max_concurrency=2),
            Deployment(integration="small", max_concurrency=1),
        )
        # A lease a worker left when it died, long expired: it holds no slot.
        await redis_client.zadd(inflight_key("small"), {"dead": time.time() * 1000 - 5000})
        tasks = [job(the_route, f"p{i}") for i in range(30)]
        async with (
            worker_process(servers, "r1", **WORKER),
            worker_process(servers, "r2", **WORKER),
            worker_process(servers, "r3", **WORKER) as doomed,
        ):
            await consumers_reading(redis_client, {"r1", "r2", "r3"})
            ran = asyncio.create_task(run_all(redis_client, tasks, timeout=60))
            await asyncio.sleep(0.5)
            held = await _pending_of(redis_client, "r3")
            doomed.send_signal(signal.SIGKILL)
            await doomed.wait()
            results = await ran
    assert held > 0, "the killed worker held no job"
    assert {r.kind for r in results.values()} == {"succeeded"}
    assert {r.deployment for r in results.values()} == {"big", "small"}
    assert (big.max_in_flight, small.max_in_flight) == (2, 1)
    assert served(big) + served(small) >= len(tasks)
    assert len(finals(await read_results(redis_client))) == len(tasks)
    assert await redis_client.zcard(inflight_key("big")) == 0


async def _pending_of(redis: Redis, consumer: str) -> int:
    summary = await redis.xpending(TASKS_STREAM, TASKS_GROUP)
    counts = {_text(c["name"]): int(c["pending"]) for c in summary["consumers"]}
    return counts.get(consumer, 0)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
