"""The dispatcher's composition root: resources built in the lifespan, kept in a typed state
(``state.DispatcherState``); the dispatch loop runs beside the HTTP server (``/health``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import metadata
from typing import Any

from fastapi import FastAPI

from libs.db import create_pool
from libs.loops import cancel_and_wait
from libs.telemetry import instrument_app, quiet, setup_tracing
from libs.webhooks import RetryPolicy
from services.dispatcher.api import router
from services.dispatcher.delivery.sender import Sender, webhook_client
from services.dispatcher.delivery.service import Dispatcher
from services.dispatcher.settings import DispatcherSettings, get_settings
from services.dispatcher.state import DispatcherState


def user_agent() -> str:
    try:
        version = metadata.version("relai")
    except metadata.PackageNotFoundError:
        version = "dev"
    return f"Relai-Webhooks/{version}"


def create_app(settings: DispatcherSettings | None = None) -> FastAPI:
    settings = settings or get_settings()
    tracing = setup_tracing("dispatcher")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        # min_size=0: the dispatcher must start, and report, while Postgres is down.
        pool = await create_pool(
            settings.database_url,
            min_size=0,
            max_size=min(settings.webhook_concurrency, 16) + 2,
            pooled=settings.database_pooled,
        )
        client = webhook_client(settings.ssrf_allow, max_connections=settings.webhook_concurrency)
        dispatcher = Dispatcher(
            pool,
            Sender(client, timeout_s=settings.webhook_timeout_s, user_agent=user_agent()),
            database_url=settings.direct_database_url,  # LISTEN: a session of its own
            policy=RetryPolicy(
                base_s=settings.webhook_retry_base_s,
                cap_s=settings.webhook_retry_cap_s,
                retry_for_s=settings.webhook_retry_for_s,
            ),
            concurrency=settings.webhook_concurrency,
            lease_s=settings.webhook_lease_s,
            poll_s=settings.dispatcher_poll_s,
            disable_after_s=settings.webhook_disable_after_s,
        )
        # The loop's own queries make no spans.
        with quiet():
            task = asyncio.create_task(dispatcher.run(), name="webhook-dispatcher")
        try:
            yield DispatcherState(
                settings=settings, pool=pool, dispatcher=dispatcher
            ).lifespan_state()
        finally:
            await cancel_and_wait([task])
            # What is in flight may end (and be recorded) within an attempt's time.
            await dispatcher.drain(settings.webhook_timeout_s)
            await client.aclose()
            await pool.close()

    app = FastAPI(title="Relai webhook dispatcher", lifespan=lifespan)
    app.include_router(router)
    if tracing:
        instrument_app(app)
    return app
