"""``relai-recon``: serve recon with uvicorn, logging JSON lines."""

import uvicorn

from libs.logs import configure_logging
from services.recon.metrics.registry import start_metrics_server
from services.recon.settings import get_settings


def run() -> None:
    settings = get_settings()
    configure_logging(service="recon", level=settings.log_level, json=settings.log_json)
    metrics = start_metrics_server(settings.recon_metrics_port, settings.recon_host)
    try:
        uvicorn.run(
            "services.recon.app:create_app",
            factory=True,
            host=settings.recon_host,
            port=settings.recon_port,
            log_config=None,
        )
    finally:
        if metrics is not None:
            metrics.shutdown()
            metrics.server_close()
