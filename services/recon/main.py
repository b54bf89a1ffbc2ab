"""``relai-recon``: serve recon with uvicorn, logging JSON lines."""

import uvicorn

from libs.logs import configure_logging
from libs.telemetry import serving_metrics
from services.recon.settings import get_settings


def run() -> None:
    settings = get_settings()
    configure_logging(service="recon", level=settings.log_level, json=settings.log_json)
    with serving_metrics(
        settings.recon_metrics_port,
        settings.recon_host,
        service="recon",
        token=settings.metrics_bearer,
    ):
        uvicorn.run(
            "services.recon.app:create_app",
            factory=True,
            host=settings.recon_host,
            port=settings.recon_port,
            log_config=None,
        )
