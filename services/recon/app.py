"""Recon's composition root: resources built in the lifespan, kept in a typed state
(``state.ReconState``)."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from fastapi import FastAPI

from libs.config import watching
from libs.db import create_pool
from libs.streams import create_redis
from libs.telemetry import instrument_app, quiet, setup_tracing
from services.recon.alerts.leader import Leadership
from services.recon.alerts.loop import AlertLoop
from services.recon.alerts.notifier import WebhookNotifier, webhook_client
from services.recon.alerts.policy import alert_policy
from services.recon.api import router
from services.recon.completion.service import CompletionLoop
from services.recon.expiry.service import ExpiryLoop
from services.recon.metrics.service import MetricsSampler
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
        # min_size=0: recon must start, and report, while Postgres is down. Six: the loops
        # (completion, expiry, usage, metrics, alerts, webhook retention) and a health check's
        # two reads (the pipeline, and webhooks apart) seldom wait for one another.
        pool = await create_pool(settings.database_url, min_size=0, max_size=6)
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
        webhook = webhook_client(settings.ssrf_allow)
        alerts = AlertLoop(
            pool,
            redis,
            leadership=Leadership(settings.database_url),
            notifier=WebhookNotifier(client=webhook),
            policy=policy.current,
            interval_s=settings.recon_alert_interval_s,
            health_timeout=settings.recon_health_timeout,
        )
        usage = UsageLoop(
            pool, interval_s=settings.recon_usage_interval_s, lag_s=settings.recon_usage_lag_s
        )
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
            ]
        try:
            yield ReconState(
                settings=settings,
                pool=pool,
                redis=redis,
                completion=completion,
                expiry=expiry,
                alert_policy=policy,
            ).lifespan_state()
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await webhook.aclose()
            await redis.aclose()
            await pool.close()
            await resources.aclose()

    app = FastAPI(title="Relai recon", lifespan=lifespan)
    app.include_router(router)
    if tracing:
        instrument_app(app)
    return app
