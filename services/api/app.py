"""The API's composition root: ``create_app()`` builds resources in the lifespan and starts the
process's background loops (outbox relay, results consumer, WebSocket hub)."""

from __future__ import annotations

import asyncio
import gc
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope, Send

from libs.blobs import open_store
from libs.config import watching
from libs.db import create_pool
from libs.logs import configure_logging, get_logger
from libs.loops import cancel_and_wait
from libs.security.ssrf import UrlPolicy
from libs.streams import create_redis
from libs.telemetry import instrument_app, quiet, setup_tracing
from services.api.api import routes
from services.api.auth.oidc import OidcVerifier
from services.api.auth.service import Authenticator
from services.api.auth.throttle import FailureThrottle
from services.api.catalog.deals import DealCatalog
from services.api.catalog.openapi import install_openapi
from services.api.catalog.service import OfferCatalog
from services.api.errors import (
    UNAVAILABLE,
    RelaiError,
    client_disconnect_handler,
    http_error_handler,
    internal_error_handler,
    relai_error_handler,
    unavailable_handler,
    validation_error_handler,
)
from services.api.files.signing import FileUrls
from services.api.hardening import Hardening
from services.api.limits.policy import limits_policy
from services.api.limits.service import RateLimiter
from services.api.metrics import MetricsMiddleware, metrics_endpoint
from services.api.outbox.relay import OutboxRelay
from services.api.results.consumer import ResultsConsumer
from services.api.settings import ApiSettings, get_settings
from services.api.state import AppState
from services.api.submission import Submitter
from services.api.submission.batcher import SubmitBatcher
from services.api.ui.pages import install_ui
from services.api.ws.hub import Hub

log = get_logger(__name__)

CORS_REQUEST_HEADERS = [
    "Authorization",
    "Content-Type",
    "Idempotency-Key",
    "Relai-Webhook-Url",
    "Relai-Tier",
    "traceparent",
    "If-None-Match",
]
CORS_EXPOSED_HEADERS = ["x-request-id", "Retry-After", "ETag", "Content-Disposition"]


async def _supervise(name: str, run: Callable[[], Awaitable[None]]) -> None:
    """Keep a background loop alive: an unexpected error is logged and the loop restarted."""
    while True:
        try:
            # A loop's polls and blocking reads make no spans; its per-request work does.
            with quiet():
                await run()
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("background loop crashed; restarting", loop=name)
            await asyncio.sleep(1.0)


def _oidc(settings: ApiSettings) -> OidcVerifier | None:
    if not settings.oidc_issuer or not settings.oidc_jwks_url:
        return None
    return OidcVerifier(
        issuer=settings.oidc_issuer,
        jwks_url=settings.oidc_jwks_url,
        audience=settings.oidc_audience,
        algorithms=settings.oidc_algorithms,
        jwks_cache_s=settings.oidc_jwks_cache_s,
        jwks_cooldown_s=settings.oidc_jwks_cooldown_s,
        leeway_s=settings.oidc_leeway_s,
    )


class RelaiApp(FastAPI):
    """FastAPI with ``Hardening`` outside all it runs (its middleware stack, the server-error
    handler's 500 and the tracing instrumentation's layer included), so that every answer goes
    through it. (Wrapping the middleware stack instead would hide it from the instrumentation,
    which then gives up.)"""

    def __init__(self, *, multipart_max_body_size: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._hardened = Hardening(
            super().__call__,
            max_body_bytes=self.max_body_size,
            multipart_max_bytes=multipart_max_body_size,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._hardened(scope, receive, send)


def create_app(settings: ApiSettings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(service="api", level=settings.log_level, json=settings.log_json)
    tracing = setup_tracing("api")

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[dict[str, Any]]:
        resources = AsyncExitStack()
        config = await resources.enter_async_context(watching(settings, os.environ))
        # min_size=0: the API starts, and answers 503, while Postgres is down (a uvicorn worker
        # process restarted during an outage must not take the whole server down).
        pool = await create_pool(
            settings.database_url,
            min_size=0,
            max_size=settings.db_pool_size,
            pooled=settings.database_pooled,
        )
        store = open_store(settings.blob_url)
        decoders = ThreadPoolExecutor(settings.image_decodes, thread_name_prefix="image-decode")
        redis = create_redis(settings.redis_url)
        hub = Hub(redis, queue_size=settings.ws_queue_size, max_per_user=settings.ws_max_per_user)
        relay = OutboxRelay(
            pool,
            redis,
            database_url=settings.direct_database_url,  # LISTEN: a session of its own
            batch=settings.relay_batch,
            poll_s=settings.relay_poll_s,
        )
        consumer = ResultsConsumer(
            pool,
            redis,
            consumer=f"{socket.gethostname()}-{os.getpid()}",
            batch=settings.results_batch,
            block_ms=settings.results_block_ms,
            reclaim_idle_s=settings.results_reclaim_idle_s,
            in_flight=settings.results_in_flight,
        )
        limits = limits_policy(settings, config)
        limiter = RateLimiter(settings.redis_url, policy=limits)
        batcher = SubmitBatcher(
            pool,
            max_batch=settings.submit_batch_max,
            flushers=settings.submit_flushers,
            on_commit=relay.wake,
        )
        tasks = [
            asyncio.create_task(_supervise("submit", batcher.run)),
            asyncio.create_task(_supervise("hub", hub.run)),
            asyncio.create_task(_supervise("relay", relay.run)),
            asyncio.create_task(_supervise("results", consumer.run)),
        ]
        # The objects built so far live as long as the process: keep them out of the cyclic
        # collector's way, so that its full passes stay short on the hot path.
        gc.collect()
        gc.freeze()
        catalog = OfferCatalog(pool, refresh_s=settings.catalog_refresh_s)
        try:
            yield AppState(
                settings=settings,
                pool=pool,
                redis=redis,
                catalog=catalog,
                auth=Authenticator(
                    pool,
                    ttl_s=settings.auth_cache_ttl_s,
                    throttle=FailureThrottle(per_window=settings.auth_failures_per_min),
                    oidc=_oidc(settings),
                    provision=settings.oidc_provision,
                ),
                hub=hub,
                submitter=Submitter(
                    pool,
                    batcher,
                    max_prompt_chars=settings.max_prompt_chars,
                    max_unfinished=lambda: limits.current().max_unfinished_per_user,
                    url_policy=UrlPolicy.from_allow(settings.ssrf_allow),
                    store=store,
                ),
                config=config,
                deals=DealCatalog(pool, catalog, refresh_s=settings.catalog_refresh_s),
                limiter=limiter,
                limits=limits,
                store=store,
                decoders=decoders,
                file_urls=FileUrls.from_settings(settings),
            ).lifespan_state()
        finally:
            await cancel_and_wait(tasks)
            await limiter.aclose()
            await redis.aclose()
            await pool.close()
            await resources.aclose()
            decoders.shutdown(wait=False, cancel_futures=True)

    # redirect_slashes=False: Hardening strips one trailing slash instead, so that no answer is a
    # redirect whose location echoes the Host header.
    app = RelaiApp(
        title="Relai",
        summary="Asynchronous, reliable generative-AI requests.",
        version="0.1.0",
        lifespan=lifespan,
        openapi_url=None,
        max_body_size=settings.max_body_bytes,
        multipart_max_body_size=settings.multipart_max_bytes,
        redirect_slashes=False,
    )
    app.add_exception_handler(RelaiError, relai_error_handler)
    app.add_exception_handler(HTTPException, http_error_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_exception_handler(ClientDisconnect, client_disconnect_handler)
    app.add_exception_handler(Exception, internal_error_handler)
    for unavailable in UNAVAILABLE:
        app.add_exception_handler(unavailable, unavailable_handler)
    app.include_router(routes(multipart_max_bytes=settings.multipart_max_bytes))
    # Metrics are served on the operator port (relai-api); here only to a scrape with the token.
    if settings.metrics_bearer:
        app.add_api_route(
            "/metrics",
            metrics_endpoint(settings.metrics_bearer),
            methods=["GET"],
            include_in_schema=False,
        )
    install_openapi(app)
    install_ui(app, settings)
    app.add_middleware(MetricsMiddleware)
    if settings.cors_allowed_origins:
        # Outside the metrics: a preflight is answered here and counts as no call.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_allowed_origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=CORS_REQUEST_HEADERS,
            expose_headers=CORS_EXPOSED_HEADERS,
            allow_credentials=False,
            max_age=600,
        )
    if tracing:
        instrument_app(app)
    return app
