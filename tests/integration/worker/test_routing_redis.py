"""The deployments' shared state in Redis, as ``libs.contracts.models`` lays it out: leases that
a dead worker's calls lose, caps, cooldowns that double and stop doubling, stats by minute."""

import asyncio
import random
import time

from redis.asyncio import Redis

from libs.contracts.models import (
    COOLDOWN_MAX_FACTOR,
    DEPLOY_KNOWN_KEY,
    STAT_ERRORS,
    STAT_LATENCY_MS,
    STAT_OK,
    STATS_KEEP_S,
    Deployment,
    cool_key,
    fails_key,
    inflight_key,
    minute_key,
)
from services.worker.providers.routing import Routes
from tests.integration.worker.routing_support import route
from tests.support import ServerUrls

A = Deployment(integration="a", weight=3, max_concurrency=2)
B = Deployment(integration="b", weight=1)


async def test_a_pick_leases_the_least_busy_per_weight_under_its_cap(
    servers: ServerUrls, redis_client: Redis
) -> None:
    routes = Routes(redis_client, lease_s=30, rng=random.Random(1))
    # A dead worker's lease, expired: it no longer counts.
    await redis_client.zadd(inflight_key("a"), {"dead": int(time.time() * 1000) - 1000})
    picks = [(await routes.pick([A, B], set(), f"c{i}")).name for i in range(4)]
    # Whatever the draws: a twice (its cap), b twice (least busy per weight otherwise).
    assert picks.count("a") == 2
    assert picks.count("b") == 2
    assert await redis_client.zcard(inflight_key("a")) == 2
    assert await redis_client.smembers(DEPLOY_KNOWN_KEY) == {b"a", b"b"}
    ttl = await redis_client.zscore(inflight_key("b"), "c3")
    assert ttl is not None
    assert 29_000 < ttl - time.time() * 1000 <= 30_500


async def test_a_cooling_or_failed_deployment_is_skipped_while_another_is_free(
    servers: ServerUrls, redis_client: Redis
) -> None:
    routes = Routes(redis_client)
    await redis_client.set(cool_key("a"), "down", px=5000)
    assert (await routes.pick([A, B], set(), "c1")).name == "b"
    await redis_client.delete(cool_key("a"))
    assert (await routes.pick([A, B], {"a"}, "c2")).name == "b"
    # Failed for this job, but the only one free: the same again.
    assert (await routes.pick([A], {"a"}, "c3")).name == "a"
    await redis_client.set(cool_key("a"), "down", px=5000)
    await redis_client.set(cool_key("b"), "down", px=2000)
    none = await routes.pick([A, B], set(), "c4")
    assert (none.name, none.cooling, none.full) == (None, 2, 0)
    assert 1500 < none.earliest_ms <= 2000


async def test_cooldowns_double_while_failing_up_to_the_cap_and_a_success_resets(
    servers: ServerUrls, redis_client: Redis
) -> None:
    routes = Routes(redis_client)
    the_route = route(B, cooldown_s=0.1)

    async def fail(retry_after_s: float | None = None) -> int:
        await redis_client.delete(cool_key("b"))  # the previous cooldown is over
        return await routes.finish(
            "b",
            "c",
            outcome="fail",
            latency_s=0.05,
            route=the_route,
            retry_after_s=retry_after_s,
            reason="503",
        )

    assert [await fail() for _ in range(7)] == [100, 200, 400, 800, 1600, 1600, 1600]
    assert COOLDOWN_MAX_FACTOR == 16
    assert await fail(retry_after_s=2.5) == 2500  # Retry-After, exactly
    # A failure of a call sent before the cooldown began does not lengthen it.
    again = await routes.finish(
        "b", "c", outcome="fail", latency_s=0, route=the_route, retry_after_s=None, reason="x"
    )
    assert again == 0
    assert await redis_client.get(cool_key("b")) == b"503"
    await routes.finish(
        "b", "c", outcome="ok", latency_s=0.2, route=the_route, retry_after_s=None, reason=""
    )
    assert not await redis_client.exists(fails_key("b"))
    stats = minute_key("b", int(time.time()) // 60)
    assert await redis_client.hgetall(stats) == {
        STAT_ERRORS.encode(): b"9",
        STAT_OK.encode(): b"1",
        STAT_LATENCY_MS.encode(): str(8 * 50 + 200).encode(),
    }
    assert 0 < await redis_client.ttl(stats) <= STATS_KEEP_S


async def test_a_live_call_keeps_its_lease_and_a_released_one_is_not_renewed(
    servers: ServerUrls, redis_client: Redis
) -> None:
    routes = Routes(redis_client, lease_s=0.5)
    the_route = route(B)
    assert (await routes.pick([B], set(), "live")).name == "b"
    assert (await routes.pick([B], set(), "done")).name == "b"
    await routes.finish(
        "b", "done", outcome="none", latency_s=0, route=the_route, retry_after_s=None, reason=""
    )
    await asyncio.sleep(0.3)
    await routes.renew()
    await asyncio.sleep(0.3)  # past the first lease
    live = await redis_client.zrangebyscore(inflight_key("b"), time.time() * 1000, "+inf")
    assert live == [b"live"]
