"""``relai-api``: serve the API with uvicorn (``--workers N`` for N processes)."""

from typing import Annotated

import typer
import uvicorn

from services.api.settings import get_settings

cli = typer.Typer(add_completion=False)


@cli.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address [RELAI_API_HOST]")] = None,
    port: Annotated[int | None, typer.Option(help="Port [RELAI_API_PORT]")] = None,
    workers: Annotated[int | None, typer.Option(help="Processes [RELAI_API_WORKERS]")] = None,
) -> None:
    settings = get_settings()
    uvicorn.run(
        "services.api.app:create_app",
        factory=True,
        host=host or settings.api_host,
        port=port or settings.api_port,
        workers=workers or settings.api_workers,
        loop="uvloop",
        http="httptools",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
    )


def run() -> None:
    cli()
