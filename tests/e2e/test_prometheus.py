"""Prometheus for real: Debian's ``prometheus`` scrapes the running api, workers, dispatcher and
recon with the shipped config (its jobs and alert rules, the targets those of this stack), and
every query of the dashboards and of the alert rules runs through its HTTP API: none errors, and
none names a metric that was not scraped."""

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from cryptography.fernet import Fernet, MultiFernet
from redis.asyncio import Redis

from libs import config
from libs.catalog import CatalogSpec, apply_catalog
from libs.config.postgres import PostgresConfigStore
from libs.contracts.models import (
    STAT_ERRORS,
    STAT_LATENCY_MS,
    STAT_OK,
    cool_key,
    inflight_key,
    minute_key,
)
from tests.dashboards import GrafanaTime, alert_expressions, metric_names, panel_queries, substitute
from tests.e2e.conftest import Stack
from tests.e2e.providers import PROVIDER_ENV
from tests.fakes.provider import FakeProvider, Reply
from tests.integration.config.conftest import clear_config_tables
from tests.monitoring import ALERTS_YML, Prometheus, QueryError, prometheus, prometheus_config
from tests.support import ServerUrls

pytestmark = pytest.mark.e2e

SCRAPE_S = 1
EXTRA = CatalogSpec.model_validate(
    {
        "handlers": [{"id": "image.draw"}, {"id": "echo.text"}, {"id": "openai.chat"}],
        "models": [
            # A model whose one server fails twice (a failover), then its fallback answers.
            {
                "name": "e2e-llm",
                "version": "1",
                "handler": "openai.chat",
                "context_window": 4096,
                "max_output_tokens": 256,
                "deployments": [{"integration": "llm_a"}],
                "max_attempts": 2,
                "cooldown_s": 0.1,
                "default": True,
            },
            {
                "name": "e2e-small",
                "version": "1",
                "handler": "openai.chat",
                "context_window": 4096,
                "max_output_tokens": 256,
                "deployments": [{"integration": "llm_b"}],
                "default": True,
            },
        ],
        "offers": [
            # A file result (its bytes by handler and media), and an integration's budget.
            {
                "service": "demo",
                "action": "draw",
                "price": 1,
                "prompt_template": "{text}",
                "handler": "image.draw",
                "params": {"width": 16, "height": 16},
            },
            {
                "service": "demo",
                "action": "metered",
                "price": 1,
                "prompt_template": "{text}",
                "handler": "echo.text",
                "params": {"integration": "metered", "budget": 1000, "window_s": 3600},
            },
            {
                "service": "demo",
                "action": "llm",
                "price": 2,
                "prompt_template": "{text}",
                "handler": "openai.chat",
                "model": "e2e-llm",
                "fallbacks": [{"model": "e2e-small", "percent": 50}],
            },
        ],
    }
)


@pytest.fixture
def stack_recon() -> bool:
    return True


@pytest.fixture
async def model_servers(
    fake: FakeProvider, servers: ServerUrls, db_pool: "asyncpg.Pool[Any]"
) -> AsyncIterator[FakeProvider]:
    """The operator's integrations ``llm_a`` and ``llm_b``, both the fake provider, in the
    config ``worker`` the workers follow."""
    await clear_config_tables(db_pool)
    store = PostgresConfigStore(db_pool, database_url=servers.database_url)
    text = "integrations:\n" + "".join(
        f"  {name}:\n    base_url: {fake.url}/v1\n" for name in ("llm_a", "llm_b")
    )
    fernet = MultiFernet([Fernet(Fernet.generate_key())])
    await config.upload(
        store, "worker", text, fernet=fernet, environ={}, author="ops", activate=True
    )
    try:
        yield fake
    finally:
        await clear_config_tables(db_pool)


@pytest.fixture
def stack_env(stack_env: dict[str, str]) -> dict[str, str]:
    """Recon sampling, folding usage and counting files every half second, not every minute;
    the fake provider on this host callable."""
    return {
        **stack_env,
        **PROVIDER_ENV,
        "RELAI_RECON_METRICS_INTERVAL_S": "0.5",
        "RELAI_RECON_USAGE_INTERVAL_S": "0.5",
        "RELAI_RECON_USAGE_LAG_S": "0",
        "RELAI_BLOB_COLLECT_INTERVAL_S": "0.5",
        "RELAI_RECON_DEPLOYMENTS_INTERVAL_S": "0.5",
    }


async def _traffic(client: httpx.AsyncClient) -> None:
    """Requests of every kind the dashboards show: succeeded (tokens), failed (refunded), a file
    result, one under an integration's budget; each waited for until it ends."""
    submitted = []
    for path, body in [
        ("/svc/demo/echo", {"text": "one two three"}),
        ("/svc/demo/greet", {"name": "Ada", "age": "36"}),
        ("/svc/demo/flaky", {"text": "fails"}),
        ("/svc/demo/draw", {"text": "a cat"}),
        ("/svc/demo/metered", {"text": "counted"}),
        ("/svc/demo/llm", {"text": "routed"}),
    ]:
        r = await client.post(path, json=body)
        assert r.status_code == 202, r.text
        submitted.append(r.json()["id"])
    async with asyncio.timeout(30):
        for request_id in submitted:
            while (await client.get(f"/svc/request/{request_id}")).json()["status"] not in (
                "succeeded",
                "failed",
            ):
                await asyncio.sleep(0.1)


async def _deployments(pool: "asyncpg.Pool[Any]", redis: Redis) -> None:
    """A model with two deployments, as the catalog and the workers leave them: one with calls
    in the last minutes (its error rate and latency), one cooling down."""
    await pool.execute(
        """INSERT INTO models (name, version, handler_id, provider_model, context_window,
                               max_output_tokens, deployments, is_default)
           VALUES ('llama3', '2024-07', 'echo.text', 'llama3', 8192, 1024, $1, true)""",
        [{"integration": "alpha"}, {"integration": "beta"}],
    )
    seconds, _ = await redis.time()
    await redis.zadd(inflight_key("alpha"), {"call-1": (seconds + 3600) * 1000})
    await redis.hset(
        minute_key("alpha", seconds // 60),
        mapping={STAT_OK: 3, STAT_ERRORS: 1, STAT_LATENCY_MS: 800},
    )
    await redis.set(cool_key("beta"), "http_503", ex=3600)


async def _until_scraped(prom: Prometheus, needed: set[str], timeout: float) -> None:
    """Until every name in ``needed`` has been scraped, and every target twice or more (a rate
    needs two samples)."""
    deadline = time.monotonic() + timeout
    while True:
        missing = needed - await prom.names()
        samples = await prom.query("min(count_over_time(up[1m])) >= 3 and min(up) == 1")
        if not missing and samples["result"]:
            return
        if time.monotonic() > deadline:
            raise AssertionError(
                f"after {timeout}s, not scraped: {sorted(missing)}; "
                f"targets: {await prom.targets_up()}"
            )
        await asyncio.sleep(0.5)


async def test_every_dashboard_and_alert_query_runs_on_what_prometheus_scraped(
    model_servers: FakeProvider,
    stack: Stack,
    client: httpx.AsyncClient,
    db_pool: "asyncpg.Pool[Any]",
    redis_client: Redis,
    tmp_path: Path,
) -> None:
    async with db_pool.acquire() as conn:
        await apply_catalog(conn, EXTRA, prune=False)
    await _deployments(db_pool, redis_client)
    model_servers.script(Reply.error(500), Reply.error(500))
    await _traffic(client)

    grafana = GrafanaTime(scrape_s=SCRAPE_S).values
    queries = [
        (f"{q.dashboard} / {q.panel}", substitute(q.text, grafana))
        for q in panel_queries()
        if q.datasource == "prometheus"
    ]
    queries += [(f"alert {name}", expr) for name, expr in alert_expressions()]
    assert len(queries) > 50
    needed = set().union(*(metric_names(expr) for _, expr in queries))

    config = prometheus_config(
        stack.metrics_targets, rule_files=[ALERTS_YML], interval=f"{SCRAPE_S}s"
    )
    async with prometheus(config, tmp_path / "prometheus") as prom:
        await _until_scraped(prom, needed, timeout=30)
        scraped = await prom.names()
        failed, unknown, empty = [], [], []
        for where, expr in queries:
            try:
                data = await prom.query(expr)
            except QueryError as exc:
                failed.append(f"{where}: {exc}")
                continue
            unknown += [f"{where}: {name}" for name in metric_names(expr) - scraped]
            if not where.startswith("alert ") and not data["result"]:
                empty.append(f"{where}: {expr}")
        health = await prom.rule_health()

    assert failed == []
    assert unknown == []
    # Every panel shows something: the traffic above gave each of its series a value.
    assert empty == []
    assert set(health.values()) == {"ok"}, health
