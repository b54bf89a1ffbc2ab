"""``relai-api``: serve the API with uvicorn (``--workers N`` for N processes)."""

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
import uvicorn

from libs.telemetry import metrics_registry, serving_metrics
from services.api.protocol import DeadlineProtocol
from services.api.settings import get_settings

cli = typer.Typer(add_completion=False)


@cli.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address [RELAI_API_HOST]")] = None,
    port: Annotated[int | None, typer.Option(help="Port [RELAI_API_PORT]")] = None,
    workers: Annotated[int | None, typer.Option(help="Processes [RELAI_API_WORKERS]")] = None,
) -> None:
    settings = get_settings()
    processes = workers or settings.api_workers
    host = host or settings.api_host
    # Served by this process: the one uvicorn runs in, or with several, their supervisor, which
    # adds up what they write to the shared directory (made first).
    with (
        _shared_metrics(processes),
        serving_metrics(
            settings.api_metrics_port,
            settings.api_metrics_host or host,
            service="api",
            registry=metrics_registry(),
            token=settings.metrics_bearer,
        ),
    ):
        _serve(host, port or settings.api_port, processes)


@contextmanager
def _shared_metrics(processes: int) -> Iterator[None]:
    """With several processes, give them one ``PROMETHEUS_MULTIPROC_DIR`` (a fresh temporary
    one unless set; a given one is emptied of the last run's files) so that the metrics add
    up all of them. Set before uvicorn starts its processes, which inherit it."""
    given = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if given:
        Path(given).mkdir(parents=True, exist_ok=True)
        for stale in Path(given).glob("*.db"):
            stale.unlink()
        yield
        return
    if processes <= 1:
        yield
        return
    directory = tempfile.mkdtemp(prefix="relai-api-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    try:
        yield
    finally:
        del os.environ["PROMETHEUS_MULTIPROC_DIR"]
        shutil.rmtree(directory, ignore_errors=True)


def _serve(host: str, port: int, workers: int) -> None:
    uvicorn.run(
        "services.api.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        loop="uvloop",
        # httptools, with deadlines on a request's headers and body (RELAI_HEADER_TIMEOUT_S,
        # RELAI_BODY_TIMEOUT_S). No limit_concurrency: uvicorn counts every open connection
        # against it, so connections held open by slow or idle clients would make it refuse
        # the other clients' requests (503).
        http=DeadlineProtocol,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
    )


def run() -> None:
    cli()
