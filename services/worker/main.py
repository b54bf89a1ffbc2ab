"""``relai-worker``: one process, one Runner, until SIGTERM or SIGINT."""

import asyncio
import os
import signal
from collections.abc import Callable

from libs.config import ConfigError, watching
from libs.logs import configure_logging, get_logger
from libs.security.ssrf import UrlPolicy
from libs.streams import create_redis
from libs.telemetry import quiet, serving_metrics, setup_tracing
from services.worker._execute import DeploymentParams, HandlerParams
from services.worker.config import deployment_params, handler_params
from services.worker.handlers import build_registry
from services.worker.providers import ProviderHttp
from services.worker.runner import Runner
from services.worker.settings import WorkerSettings, get_settings

log = get_logger(__name__)


async def serve(settings: WorkerSettings) -> None:
    """Load the central config (if any), then run the worker, following config activations."""
    async with watching(settings, os.environ) as config:
        if config is None:
            await _serve(settings, None, None)
        else:
            await _serve(settings, handler_params(config), deployment_params(config))


async def _serve(
    settings: WorkerSettings, params: HandlerParams | None, deployments: DeploymentParams | None
) -> None:
    """Build the worker's resources, run until a stop signal, drain, and release them."""
    redis = create_redis(settings.redis_url)
    http = ProviderHttp(
        max_connections=settings.worker_concurrency,
        policy=UrlPolicy.from_allow(settings.ssrf_allow),
    )
    runner = Runner(
        redis,
        build_registry(http=http),
        settings,
        handler_params=params,
        deployment_params=deployments,
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, runner.stop)
    try:
        # Reads and acks make no spans; each job makes its own, in its request's trace.
        with quiet():
            await runner.run()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await http.aclose()
        await redis.aclose()


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def run() -> None:
    settings = get_settings()
    configure_logging(service="worker", level=settings.log_level, json=settings.log_json)
    setup_tracing("worker")
    with serving_metrics(
        settings.worker_metrics_port, service="worker", token=settings.metrics_bearer
    ):
        try:
            with asyncio.Runner(loop_factory=_loop_factory()) as runner:
                runner.run(serve(settings))
        except ConfigError as exc:
            log.error("worker.config_unavailable", error=str(exc))
            raise SystemExit(1) from None
