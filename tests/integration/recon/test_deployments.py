"""Recon's view of the models' deployments: the catalog's models (Postgres) and what workers
leave in Redis per deployment (``libs.contracts.models``), read by the deployments loop into
``/health`` and the gauges."""

import asyncio
from collections.abc import Sequence
from typing import Any

import asyncpg
import pytest
from prometheus_client import REGISTRY
from redis.asyncio import Redis
from redis.exceptions import RedisError

from libs.contracts.models import (
    STAT_ERRORS,
    STAT_LATENCY_MS,
    STAT_OK,
    cool_key,
    inflight_key,
    minute_key,
)
from libs.streams import create_redis
from services.recon.deployments.schemas import ModelsReport
from services.recon.deployments.service import DeploymentsLoop
from tests.integration.recon.conftest import closed_port, recon, settings_for
from tests.support import ServerUrls

HANDLER = "openai.chat"


async def _model(
    pool: "asyncpg.Pool[Any]",
    name: str,
    version: str,
    deployments: Sequence[dict[str, Any]],
    *,
    enabled: bool = True,
) -> None:
    await pool.execute(
        """INSERT INTO handlers (id, credits, params, enabled) VALUES ($1, 0, '{}', true)
           ON CONFLICT (id) DO NOTHING""",
        HANDLER,
    )
    await pool.execute(
        """INSERT INTO models (name, version, handler_id, provider_model, context_window,
                               max_output_tokens, deployments, enabled)
           VALUES ($1, $2, $3, $1, 8192, 1024, $4, $5)
           ON CONFLICT (name, version) DO UPDATE SET deployments = $4, enabled = $5""",
        name,
        version,
        HANDLER,
        list(deployments),
        enabled,
    )


async def _redis_now(redis: Redis) -> tuple[int, int]:
    """(now in ms, minute index) by Redis's clock, the one the reader goes by."""
    seconds, micros = await redis.time()
    return seconds * 1000 + micros // 1000, seconds // 60


async def _seed_traffic(redis: Redis) -> int:
    """alpha: two live leases and one expired, calls within the 5 minutes and a heavy minute
    just before them; beta and gamma cooling down. Returns the minute seeded for."""
    now_ms, minute = await _redis_now(redis)
    await redis.zadd(
        inflight_key("alpha"),
        {"call-1": now_ms + 60_000, "call-2": now_ms + 60_000, "call-dead": now_ms - 1_000},
    )
    for index, ok, errors, latency in (
        (minute, 3, 1, 400),
        (minute - 4, 1, 0, 100),
        (minute - 5, 100, 100, 99_999),  # ended before the window
    ):
        await redis.hset(
            minute_key("alpha", index),
            mapping={STAT_OK: ok, STAT_ERRORS: errors, STAT_LATENCY_MS: latency},
        )
    await redis.set(cool_key("beta"), "http_503", px=20_000)
    await redis.set(cool_key("gamma"), "timeout", px=40_000)
    return minute


async def _read_within_one_minute(loop: DeploymentsLoop, redis: Redis) -> ModelsReport:
    """Seed and read in the same minute (a read in the next would see one minute fewer)."""
    for _ in range(3):
        await redis.flushdb()
        minute = await _seed_traffic(redis)
        report = await loop.run_once()
        if (await _redis_now(redis))[1] == minute:
            return report
    raise AssertionError("the minute turned on every try")


def _gauge(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


async def test_reads_each_deployments_figures_sets_the_gauges_and_drops_stale_series(
    servers: ServerUrls, db_pool: "asyncpg.Pool[Any]", redis_client: Redis
) -> None:
    await _model(
        db_pool,
        "llama3",
        "2024-07",
        [{"integration": "alpha", "weight": 3, "max_concurrency": 4}, {"integration": "beta"}],
    )
    await _model(db_pool, "solo", "1", [{"integration": "gamma"}])
    await _model(db_pool, "bare", "1", [])
    await _model(db_pool, "off", "1", [{"integration": "alpha"}], enabled=False)
    loop = DeploymentsLoop(db_pool, redis_client, interval_s=60)
    assert loop.report() is None

    report = await _read_within_one_minute(loop, redis_client)

    assert set(report) == {"llama3", "solo", "bare"}
    llama = report["llama3"]["2024-07"]
    assert llama.all_down is False
    alpha, beta = llama.deployments
    assert alpha.model_dump() == {
        "integration": "alpha",
        "weight": 3,
        "in_flight": 2,
        "cooling": False,
        "cooling_s": None,
        "calls_5m": 5,
        "errors_5m": 1,
        "error_rate_5m": 0.2,
        "latency_ms_5m": 100.0,
    }
    assert beta.integration == "beta"
    assert beta.weight == 1
    assert beta.cooling is True
    assert beta.cooling_s is not None
    assert 15 < beta.cooling_s <= 20
    assert (beta.in_flight, beta.calls_5m, beta.errors_5m) == (0, 0, 0)
    assert beta.error_rate_5m is None
    assert beta.latency_ms_5m is None
    assert report["solo"]["1"].all_down is True
    assert report["bare"]["1"].model_dump() == {"all_down": False, "deployments": []}
    assert loop.report() == report

    at = {"model": "llama3", "version": "2024-07"}
    assert _gauge("relai_deployment_in_flight", **at, deployment="alpha") == 2
    assert _gauge("relai_deployment_cooling", **at, deployment="alpha") == 0
    assert _gauge("relai_deployment_cooling", **at, deployment="beta") == 1
    assert _gauge("relai_deployment_error_rate", **at, deployment="alpha") == 0.2
    assert _gauge("relai_deployment_latency_seconds", **at, deployment="alpha") == 0.1
    assert _gauge("relai_deployment_error_rate", **at, deployment="beta") is None
    assert _gauge("relai_deployment_latency_seconds", **at, deployment="beta") is None
    assert _gauge("relai_model_deployments", **at) == 2
    assert _gauge("relai_model_deployments_up", **at) == 1
    solo = {"model": "solo", "version": "1"}
    assert _gauge("relai_model_deployments", **solo) == 1
    assert _gauge("relai_model_deployments_up", **solo) == 0
    assert _gauge("relai_deployment_cooling", **solo, deployment="gamma") == 1
    assert _gauge("relai_model_deployments", model="bare", version="1") == 0
    assert _gauge("relai_model_deployments", model="off", version="1") is None

    # beta taken out of llama3, solo disabled, alpha's calls gone from the window.
    await _model(db_pool, "llama3", "2024-07", [{"integration": "alpha"}])
    await _model(db_pool, "solo", "1", [{"integration": "gamma"}], enabled=False)
    _, minute = await _redis_now(redis_client)
    await redis_client.delete(*(minute_key("alpha", minute - n) for n in range(6)))
    report = await loop.run_once()

    assert set(report) == {"llama3", "bare"}
    (alpha,) = report["llama3"]["2024-07"].deployments
    assert (alpha.integration, alpha.weight, alpha.calls_5m) == ("alpha", 1, 0)
    assert _gauge("relai_deployment_in_flight", **at, deployment="alpha") == 2
    assert _gauge("relai_deployment_error_rate", **at, deployment="alpha") is None
    assert _gauge("relai_deployment_latency_seconds", **at, deployment="alpha") is None
    for name in ("relai_deployment_in_flight", "relai_deployment_cooling"):
        assert _gauge(name, **at, deployment="beta") is None
        assert _gauge(name, **solo, deployment="gamma") is None
    assert _gauge("relai_model_deployments", **at) == 1
    assert _gauge("relai_model_deployments_up", **at) == 1
    assert _gauge("relai_model_deployments", **solo) is None
    assert _gauge("relai_model_deployments_up", **solo) is None


async def test_a_failed_read_empties_the_report(
    servers: ServerUrls, db_pool: "asyncpg.Pool[Any]", redis_client: Redis
) -> None:
    """Figures grown old are not shown as current: null until a read succeeds again."""
    await _model(db_pool, "solo", "1", [{"integration": "gamma"}])
    loop = DeploymentsLoop(db_pool, redis_client, interval_s=60)
    await loop.run_once()
    assert loop.report() is not None
    away = create_redis(f"redis://127.0.0.1:{closed_port()}/0")
    loop = DeploymentsLoop(db_pool, away, interval_s=60)
    loop._report = {}  # as if a read had succeeded before Redis went away
    try:
        with pytest.raises(RedisError):
            await loop.run_once()
    finally:
        await away.aclose()
    assert loop.report() is None


async def test_health_shows_each_model_versions_deployments_over_http(
    servers: ServerUrls, db_pool: "asyncpg.Pool[Any]", redis_client: Redis
) -> None:
    await _model(db_pool, "llama3", "2024-07", [{"integration": "alpha"}, {"integration": "beta"}])
    await _model(db_pool, "solo", "1", [{"integration": "gamma"}])
    await _seed_traffic(redis_client)

    async with recon(settings_for(servers, recon_deployments_interval_s=0.1)) as client:
        async with asyncio.timeout(10):
            while True:
                response = await client.get("/health")
                if response.json().get("models"):
                    break
                await asyncio.sleep(0.05)

    # All deployments of a model down is a figure and Prometheus's alert, not an unavailable
    # recon: the answer stays 200, as for a backlog.
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    models = body["models"]
    assert set(models) == {"llama3", "solo"}
    assert set(models["llama3"]) == {"2024-07"}
    llama = models["llama3"]["2024-07"]
    assert llama["all_down"] is False
    assert [d["integration"] for d in llama["deployments"]] == ["alpha", "beta"]
    for deployment in llama["deployments"]:
        assert set(deployment) == {
            "integration",
            "weight",
            "in_flight",
            "cooling",
            "cooling_s",
            "calls_5m",
            "errors_5m",
            "error_rate_5m",
            "latency_ms_5m",
        }
    alpha, beta = llama["deployments"]
    assert alpha["in_flight"] == 2
    assert alpha["cooling"] is False
    assert beta["cooling"] is True
    assert 0 < beta["cooling_s"] <= 20
    solo = models["solo"]["1"]
    assert solo["all_down"] is True
    assert solo["deployments"][0]["cooling"] is True
