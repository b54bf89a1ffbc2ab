"""``relai-dispatcher``: serve the webhook dispatcher with uvicorn, logging JSON lines."""

import uvicorn

from libs.logs import configure_logging
from libs.telemetry import serving_metrics
from services.dispatcher.settings import get_settings


def run() -> None:
    settings = get_settings()
    configure_logging(service="dispatcher", level=settings.log_level, json=settings.log_json)
    with serving_metrics(
        settings.dispatcher_metrics_port,
        settings.dispatcher_host,
        service="dispatcher",
        token=settings.metrics_bearer,
    ):
        uvicorn.run(
            "services.dispatcher.app:create_app",
            factory=True,
            host=settings.dispatcher_host,
            port=settings.dispatcher_port,
            log_config=None,
        )
