"""``python -m bench.peers``: the peer task queues on the same three workloads as
``python -m bench``, and one table with Relai's row (see ``bench.peers.driver``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bench.peers.driver import RELAI_JSON, Options, main

cli = typer.Typer(add_completion=False)


@cli.command()
def run(
    n: Annotated[int, typer.Option(help="no-op tasks in the throughput run")] = 20_000,
    rate: Annotated[float, typer.Option(help="offered tasks/s of the latency run")] = 500,
    rate_seconds: Annotated[float, typer.Option(help="length of the latency run")] = 10,
    sleep_jobs: Annotated[int, typer.Option(help="tasks of 1 s in the drain run")] = 1000,
    only: Annotated[str, typer.Option(help="comma-separated peers (default: all)")] = "",
    relai: Annotated[Path, typer.Option(help="Relai's figures, as python -m bench wrote them")] = (
        RELAI_JSON
    ),
) -> None:
    options = Options(n=n, rate=rate, rate_seconds=rate_seconds, sleep_jobs=sleep_jobs)
    peers = [p.strip() for p in only.split(",") if p.strip()]
    raise typer.Exit(main(options, peers, relai))


if __name__ == "__main__":
    cli()
