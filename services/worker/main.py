"""``relai-worker``: one process, one Runner, until SIGTERM or SIGINT."""

import asyncio
import os
import signal
from collections.abc import Callable

from libs.config import ConfigError, watching
from libs.logs import configure_logging, get_logger
from libs.streams import create_redis
from services.worker._execute import HandlerParams
from services.worker.config import handler_params
from services.worker.handlers import build_registry
from services.worker.metrics import start_metrics_server
from services.worker.runner import Runner
from services.worker.settings import WorkerSettings, get_settings

log = get_logger(__name__)


async def serve(settings: WorkerSettings) -> None:
    """Load the central config (if any), then run the worker, following config activations."""
    async with watching(settings, os.environ) as config:
        await _serve(settings, handler_params(config) if config is not None else None)


async def _serve(settings: WorkerSettings, params: HandlerParams | None) -> None:
    """Build the worker's resources, run until a stop signal, drain, and release them."""
    redis = create_redis(settings.redis_url)
    runner = Runner(redis, build_registry(), settings, handler_params=params)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, runner.stop)
    try:
        await runner.run()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
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
    metrics = start_metrics_server(settings.worker_metrics_port)
    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            runner.run(serve(settings))
    except ConfigError as exc:
        log.error("worker.config_unavailable", error=str(exc))
        raise SystemExit(1) from None
    finally:
        if metrics is not None:
            metrics.shutdown()
            metrics.server_close()
