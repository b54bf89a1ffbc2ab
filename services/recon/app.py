"""Recon's composition root: resources built in the lifespan, kept in a typed state
(``state.ReconState``)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI

from libs.blobs.store import open_store
from libs.config import watching
from libs.db import create_pool
from libs.loops import cancel_and_wait
from libs.streams import create_redis
from libs.telemetry import instrument_app, quiet, setup_tracing
from services.recon.alerts.alertmanager import AlertmanagerNotifier
from services.recon.alerts.leader import Leadership
from services.recon.alerts.loop import AlertLoop
from services.recon.alerts.notifier import WebhookNotifier, webhook_client
from services.recon.alerts.policy import alert_policy
from services.recon.api import router
from services.recon.completion.service import CompletionLoop
from services.recon.deployments.service import DeploymentsLoop
from services.recon.expiry.service import ExpiryLoop
from services.recon.files.service import ORPHANS_LOCK, FilesCollector
from services.recon.metrics.service import MetricsSampler
from services.recon.scheduling.weights import WeightsLoop
from services.recon.settings import ReconSettings, get_settings
from services.recon.state import ReconState
from services.recon.usage.service import UsageLoop
from services.recon.webhooks.service import WebhookRetentionLoop


def create_app(settings: ReconSettings | None = None) -> FastAPI:
    settings = settings or get_settings()
    tracing = setup_tracing("recon")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        resources = AsyncExitStack()
        config = await resources.enter_async_context(watching(settings, os.environ))
        policy = alert_policy(settings, config)
        # min_size=0: recon must start, and report, while Postgres is down. Eight: the loops
        # (completion, expiry, usage, metrics, alerts, webhook retention, files and their orphan
        # sweep, weights, deployments) and a health check's two reads (the pipeline, and webhooks
        # apart) seldom wait for one another.
        pool = await create_pool(
            settings.database_url, min_size=0, max_size=8, pooled=settings.database_pooled
        )
        redis = create_redis(settings.redis_url, max_connections=8)
        completion = CompletionLoop(
            pool,
            redis,
            interval_s=settings.recon_completion_interval_s,
            stuck_after_s=settings.recon_stuck_after_s,
            deadline_grace_s=settings.recon_deadline_grace_s,
            max_attempts=settings.recon_max_attempts,
            batch=settings.recon_completion_batch,
        )
        expiry = ExpiryLoop(
            pool,
            redis,
            interval_s=settings.recon_expiry_interval_s,
            batch=settings.recon_expiry_batch,
        )
        retention = WebhookRetentionLoop(
            pool,
            interval_s=settings.webhook_retention_interval_s,
            retention_s=settings.webhook_retention_s,
            batch=settings.webhook_retention_batch,
        )
        files = FilesCollector(
            pool,
            open_store(settings.blob_url),
            leadership=Leadership(settings.direct_database_url, lock=ORPHANS_LOCK),
            grace_s=settings.blob_grace_s,
            orphan_after_s=settings.blob_orphan_after_s,
            interval_s=settings.blob_collect_interval_s,
            orphan_interval_s=settings.blob_orphan_interval_s,
            batch=settings.blob_collect_batch,
            orphan_limit=settings.blob_orphan_limit,
        )
        webhook = webhook_client(settings.ssrf_allow)
        # The operator's own Alertmanager, named by a process setting (never by a config anyone
        # with config access may change): no SSRF guard.
        alertmanager = httpx.AsyncClient(timeout=5.0)
        alerts = AlertLoop(
            pool,
            redis,
            leadership=Leadership(settings.direct_database_url),
            notifier=WebhookNotifier(client=webhook),
            policy=policy.current,
            interval_s=settings.recon_alert_interval_s,
            health_timeout=settings.recon_health_timeout,
            alertmanager=None
            if settings.recon_alertmanager_url is None
            else AlertmanagerNotifier(
                client=alertmanager,
                url=settings.recon_alertmanager_url,
                interval_s=settings.recon_alert_interval_s,
                hold_s=settings.recon_alertmanager_hold_s,
            ),
        )
        usage = UsageLoop(
            pool, interval_s=settings.recon_usage_interval_s, lag_s=settings.recon_usage_lag_s
        )
        weights = WeightsLoop(pool, redis, interval_s=settings.recon_weights_interval_s)
        deployments = DeploymentsLoop(pool, redis, interval_s=settings.recon_deployments_interval_s)
        sampler = MetricsSampler(
            pool,
            redis,
            interval_s=settings.recon_metrics_interval_s,
            timeout_s=settings.recon_health_timeout,
            top_users=settings.recon_top_users,
            top_users_window_s=settings.recon_top_users_window_s,
        )
        # The loops' own queries make no spans; a re-driven request's work joins its trace.
        with quiet():
            tasks = [
                asyncio.create_task(completion.run_forever(), name="recon-completion"),
                asyncio.create_task(sampler.run_forever(), name="recon-metrics"),
                asyncio.create_task(alerts.run_forever(), name="recon-alerts"),
                asyncio.create_task(expiry.run_forever(), name="recon-expiry"),
                asyncio.create_task(usage.run_forever(), name="recon-usage"),
                asyncio.create_task(retention.run_forever(), name="recon-webhook-retention"),
                asyncio.create_task(files.run_forever(), name="recon-files"),
                asyncio.create_task(weights.run_forever(), name="recon-weights"),
                asyncio.create_task(deployments.run_forever(), name="recon-deployments"),
            ]
        try:
            yield ReconState(
                settings=settings,
                pool=pool,
                redis=redis,
                completion=completion,
                expiry=expiry,
                files=files,
                deployments=deployments,
                alert_policy=policy,
            ).lifespan_state()
        finally:
            await cancel_and_wait(tasks)
            await webhook.aclose()
            await alertmanager.aclose()
            await redis.aclose()
            await pool.close()
            await resources.aclose()

    app = FastAPI(title="Relai recon", lifespan=lifespan)
    app.include_router(router)
    if tracing:
        instrument_app(app)
    return app
