"""Jobs of a model routed across its deployments by a running worker, each deployment a fake
provider of its own: the split by weight, the least busy first, failover when a server dies or
rate-limits, no failover of a call that may still run, and what results and Redis say."""

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from redis.asyncio import Redis

from libs.contracts import ResultMessage
from libs.contracts.models import (
    DEPLOY_KNOWN_KEY,
    STAT_ERRORS,
    STAT_LATENCY_MS,
    STAT_OK,
    Deployment,
    Route,
    cool_key,
    fails_key,
    inflight_key,
    minute_key,
)
from services.worker.metrics import DEPLOYMENT_CALLS, DEPLOYMENT_FAILOVERS
from tests.fakes.provider import FakeProvider, Reply, fake_provider
from tests.integration.worker.helpers import finals, read_results
from tests.integration.worker.routing_support import (
    MODEL,
    configure,
    job,
    route,
    routing_worker,
    run_all,
    served,
)
from tests.support import ServerUrls

Fakes = tuple[FakeProvider, FakeProvider]


@pytest.fixture
async def fakes() -> AsyncIterator[Fakes]:
    async with fake_provider() as one, fake_provider() as two:
        yield one, two


@pytest.mark.parametrize("concurrency", [1, 40])
async def test_traffic_splits_by_weight(
    servers: ServerUrls,
    db_pool: "asyncpg.Pool[Any]",
    redis_client: Redis,
    fakes: Fakes,
    concurrency: int,
) -> None:
    """One at a time every pick is a tie, drawn by weight; under load the least busy per
    unit of weight is picked: either way about 3 in 4 calls go to the deployment of weight 3."""
    heavy, light = fakes
    if concurrency > 1:  # calls long enough to overlap
        for fake in fakes:
            fake.script(*[Reply.ok(delay_s=0.02)] * 200)
    watcher = await configure(servers, db_pool, {"heavy": heavy, "light": light})
    the_route = route(
        Deployment(integration="heavy", weight=3), Deployment(integration="light", weight=1)
    )
    tasks = [job(the_route, f"p{i}") for i in range(200)]
    async with routing_worker(redis_client, watcher, concurrency=concurrency):
        results = await run_all(redis_client, tasks)
    assert {r.kind for r in results.values()} == {"succeeded"}
    share = served(heavy) / len(tasks)
    assert 0.65 <= share <= 0.85, (served(heavy), served(light))
    assert served(heavy) + served(light) == len(tasks)
    by_deployment = [r.deployment for r in results.values()]
    assert by_deployment.count("heavy") == served(heavy)
    assert {c.body["model"] for c in heavy.calls + light.calls} == {"llama-3"}
    # The stats of the minute(s) the calls ended in, and no lease left.
    minute = int(time.time()) // 60
    oks = 0
    for m in (minute - 1, minute):
        stats = await redis_client.hgetall(minute_key("heavy", m))
        oks += int(stats.get(STAT_OK.encode(), 0))
        if stats:
            assert int(stats[STAT_LATENCY_MS.encode()]) >= 0
            assert STAT_ERRORS.encode() not in stats
    assert oks == served(heavy)
    assert await redis_client.zcard(inflight_key("heavy")) == 0
    assert await redis_client.smembers(DEPLOY_KNOWN_KEY) == {b"heavy", b"light"}


async def test_a_slow_deployment_gets_fewer_jobs(
    servers: ServerUrls, db_pool: "asyncpg.Pool[Any]", redis_client: Redis, fakes: Fakes
) -> None:
    slow, fast = fakes
    slow.script(*[Reply.ok(delay_s=0.5)] * 100)
    fast.script(*[Reply.ok(delay_s=0.02)] * 100)
    watcher = await configure(servers, db_pool, {"slow": slow, "fast": fast})
    the_route = route(Deployment(integration="slow"), Deployment(integration="fast"))
    tasks = [job(the_route, f"p{i}") for i in range(80)]
    async with routing_worker(redis_client, watcher, concurrency=10):
        results = await run_all(redis_client, tasks)
    assert {r.kind for r in results.values()} == {"succeeded"}
    assert served(slow) < 0.25 * len(tasks), (served(slow), served(fast))


async def test_a_killed_server_fails_over_and_gets_nothing_while_cooling(
    servers: ServerUrls, db_pool: "asyncpg.Pool[Any]", redis_client: Redis, fakes: Fakes
) -> None:
    doomed, survivor = fakes
    for fake in fakes:
        fake.script(*[Reply.ok(delay_s=0.3)] * 400)
    watcher = await configure(servers, db_pool, {"doomed": doomed, "survivor": survivor})
    cooldown_s = 3.0
    the_route = route(
        Deployment(integration="doomed"),
        Deployment(integration="survivor"),
        cooldown_s=cooldown_s,
    )
    failovers = DEPLOYMENT_FAILOVERS.labels(MODEL)._value.get()
    tasks = [job(the_route, f"p{i}") for i in range(60)]
    async with routing_worker(redis_client, watcher, concurrency=12):
        added = asyncio.create_task(run_all(redis_client, tasks))
        while doomed.in_flight < 4:
            await asyncio.sleep(0.01)
        lost = doomed.in_flight
        await doomed.kill()
        killed_at = time.monotonic()
        await asyncio.sleep(0.3)
        await doomed.restart()  # back, but still cooling down
        results = await added
        assert time.monotonic() < killed_at + cooldown_s - 0.5, "the test ran too slowly"
        before = served(doomed)
        # Once the cooldown is over, it is called again.
        await asyncio.sleep(max(0.0, killed_at + cooldown_s + 0.1 - time.monotonic()))
        later = [job(the_route, f"q{i}") for i in range(20)]
        again = await run_all(redis_client, later)
    assert {r.kind for r in results.values()} == {"succeeded"}
    assert {r.kind for r in again.values()} == {"succeeded"}
    # Every job ended once, the lost calls' on the survivor.
    assert len(finals(await read_results(redis_client))) == len(tasks) + len(later)
    assert served(survivor) >= len(tasks) - before
    # What it got came before the kill; back up, it got nothing until its cooldown ended.
    assert all(c.at < killed_at for c in doomed.calls[:before])
    assert served(doomed) > before
    assert min(c.at for c in doomed.calls[before:]) >= killed_at + cooldown_s - 0.05
    assert DEPLOYMENT_FAILOVERS.labels(MODEL)._value.get() - failovers >= lost
    assert DEPLOYMENT_CALLS.labels(MODEL, "doomed", "connection")._value.get() >= lost


async def test_a_rate_limited_deployment_is_skipped_until_its_retry_after(
    servers: ServerUrls, db_pool: "asyncpg.Pool[Any]", redis_client: Redis, fakes: Fakes
) -> None:
    limited, other = fakes
    limited.script(Reply.rate_limited(1.5))
    watcher = await configure(servers, db_pool, {"limited": limited, "other": other})
    the_route = route(Deployment(integration="limited"), Deployment(integration="other"))
    tasks = [job(the_route, f"p{i}") for i in range(25)]
    results: dict[uuid.UUID, ResultMessage] = {}
    async with routing_worker(redis_client, watcher):
        for message in tasks:  # one job every 0.1 s, for 2.5 s
            results.update(await run_all(redis_client, [message], timeout=5))
            await asyncio.sleep(0.1)
    assert {r.kind for r in results.values()} == {"succeeded"}
    first, *after = limited.calls
    assert after, "never called again after its Retry-After"
    assert min(c.at for c in after) >= first.at + 1.5
    # The job that got the 429 was answered by the other deployment.
    (refused,) = [t for t in tasks if t.prompt == first.body["messages"][-1]["content"]]
    assert results[refused.request_id].deployment == "other"


async def test_with_every_deployment_failing_the_job_fails_after_max_attempts(
    servers: ServerUrls, db_pool: "asyncpg.Pool[Any]", redis_client: Redis, fakes: Fakes
) -> None:
    for fake in fakes:
        fake.script(*[Reply.error(502)] * 10)
    watcher = await configure(servers, db_pool, {"one": fakes[0], "two": fakes[1]})
    the_route = route(
        Deployment(integration="one"), Deployment(integration="two"), max_attempts=3, cooldown_s=0.1
    )
    down = route(Deployment(integration="one"), Deployment(integration="two"), cooldown_s=60)
    tasks = [job(the_route), job(down, job_timeout_s=5)]
    async with routing_worker(redis_client, watcher, concurrency=1):
        results = await run_all(redis_client, tasks)
    failed, gone = results[tasks[0].request_id], results[tasks[1].request_id]
    assert failed.kind == "failed"
    assert failed.error is not None
    assert f"model {MODEL}: 3 calls failed (deployments tried: " in failed.error
    assert {"one", "two"} <= set(failed.error.split("tried: ")[1].split(")")[0].split(", "))
    assert "502" in failed.error
    assert failed.deployment in {"one", "two"}
    # Each called once, both now cooling for a minute: the second job waits for neither.
    assert gone.kind == "failed"
    assert gone.error is not None
    assert "all its deployments are down" in gone.error
    assert served(fakes[0]) + served(fakes[1]) == 3 + 2
    assert int(await redis_client.get(fails_key("one")) or 0) >= 1
    assert await redis_client.pttl(cool_key("two")) > 50_000


@pytest.mark.parametrize("idempotent", [False, True])
async def test_a_timeout_after_sending_is_sent_elsewhere_only_when_idempotent(
    servers: ServerUrls,
    db_pool: "asyncpg.Pool[Any]",
    redis_client: Redis,
    fakes: Fakes,
    idempotent: bool,
) -> None:
    stuck, spare = fakes
    stuck.script(Reply.ok(delay_s=3))
    watcher = await configure(servers, db_pool, {"stuck": stuck, "spare": spare})
    the_route = route(
        Deployment(integration="stuck"), Deployment(integration="spare"), idempotent=idempotent
    )
    # Another worker's call on spare: stuck, the least busy, is picked first.
    await redis_client.zadd(inflight_key("spare"), {"elsewhere": time.time() * 1000 + 60_000})
    message = job(the_route, timeout_s=0.3)
    async with routing_worker(redis_client, watcher):
        (result,) = (await run_all(redis_client, [message])).values()
    assert len(stuck.calls) == 1
    if idempotent:
        assert (result.kind, result.deployment, served(spare)) == ("succeeded", "spare", 1)
    else:
        assert (result.kind, result.deployment, served(spare)) == ("failed", "stuck", 0)
        assert result.error is not None
        assert "deployment stuck timed out after the request was sent" in result.error
        assert "not sent again" in result.error


async def test_a_fallback_model_is_called_only_after_calls_that_did_not_answer(
    servers: ServerUrls, db_pool: "asyncpg.Pool[Any]", redis_client: Redis, fakes: Fakes
) -> None:
    primary, fallback = fakes
    primary.script(Reply.error(503), Reply.error(503), Reply.ok(delay_s=3))
    watcher = await configure(servers, db_pool, {"primary": primary, "fallback": fallback})
    small = Route(
        model="small",
        version="1",
        provider_model="small-1",
        deployments=[Deployment(integration="fallback")],
    )
    the_route = route(
        Deployment(integration="primary"), max_attempts=2, cooldown_s=0.05, fallbacks=[small]
    )
    down, stuck = job(the_route), job(the_route, timeout_s=0.3)
    async with routing_worker(redis_client, watcher, concurrency=1):
        answered = (await run_all(redis_client, [down]))[down.request_id]
        # The primary's call times out after it was sent: it may still run, so no fallback.
        timed_out = (await run_all(redis_client, [stuck]))[stuck.request_id]
    assert (answered.kind, answered.deployment, answered.model) == (
        "succeeded",
        "fallback",
        "small@1",
    )
    assert fallback.calls[0].body["model"] == "small-1"
    assert (timed_out.kind, timed_out.deployment, timed_out.model) == (
        "failed",
        "primary",
        f"{MODEL}@1",
    )
    assert len(fallback.calls) == 1
