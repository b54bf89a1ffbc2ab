"""``relai-api``: serve the API with uvicorn (``--workers N`` for N processes)."""

import os
import secrets
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
    if processes > 1 and settings.file_url_key is None:
        # One key for every process uvicorn starts (they inherit the environment): a URL one
        # signs, another serves.
        os.environ["RELAI_FILE_URL_KEY"] = secrets.token_urlsafe(32)
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


WORKER_HEALTHCHECK_S = 30
"""How long uvicorn's supervisor waits for a worker process to answer its ping before killing it
as hung (uvicorn's default: 5 s). A new worker answers only once it has imported the app, which
takes seconds, more on a busy machine: with 5 s, a worker restarted after a crash on a loaded
host was killed before it answered, again and again, and the API stayed down for over a minute."""


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
        timeout_worker_healthcheck=WORKER_HEALTHCHECK_S,
    )


def run() -> None:
    cli()
