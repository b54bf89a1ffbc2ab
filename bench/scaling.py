"""``python -m bench.scaling``: end-to-end throughput as processes are added, on this machine.

For each combination of API processes (``relai-api --workers``: 1 and 2) and worker processes
(1, 2 and 4), a stack is started (``bench.stack.running_stack``) and driven at saturation with two
kinds of job:

- ``echo``: a job that returns at once (``echo.text``): what bounds it is the API, Postgres and
  Redis, not the workers;
- ``work``: a job that waits 50 ms (``echo.delay``) in a worker limited to ``--worker-slots``
  jobs at once (``RELAI_WORKER_CONCURRENCY``): a stand-in for jobs that keep a worker busy,
  which more workers run more of.

Each row also gives the CPU the stores spent per request (Postgres, Redis): one primary of each
serves every replica, so the core a store can use divided by its cost per request is the
throughput past which adding API or worker processes stops helping (see docs/scaling.md).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Annotated

import typer
import uvloop

from bench.load import run_load
from bench.stack import Running, running_stack

cli = typer.Typer(add_completion=False)

SETTLE_S = 2.0


@dataclass
class Row:
    api: int
    workers: int
    echo_rps: float
    work_rps: float
    failed: int
    postgres_us: float
    redis_us: float
    api_us: float
    worker_us: float


async def _measure(stack: Running, *, echo: int, work: int, api: int, workers: int) -> Row:
    warm = await stack.new_user("warmup")
    await run_load(stack.url, warm, name="warm-up", path="/svc/bench/echo", total=min(echo, 1000))
    await asyncio.sleep(SETTLE_S)
    key = await stack.new_user("echo")
    before = stack.cpu_seconds()
    echoed = await run_load(
        stack.url, key, name="echo", path="/svc/bench/echo", total=echo, concurrency=64
    )
    after = stack.cpu_seconds()
    per_request = {
        part: (used - before.get(part, 0.0)) / max(echoed.completed, 1) * 1e6
        for part, used in after.items()
    }
    await asyncio.sleep(SETTLE_S)
    key = await stack.new_user("work")
    worked = await run_load(
        stack.url, key, name="work", path="/svc/bench/work", total=work, concurrency=128
    )
    return Row(
        api=api,
        workers=workers,
        echo_rps=echoed.throughput,
        work_rps=worked.throughput,
        failed=echoed.failed + worked.failed + echoed.rejected.total() + worked.rejected.total(),
        postgres_us=per_request.get("postgres", 0.0),
        redis_us=per_request.get("redis", 0.0),
        api_us=per_request.get("relai-api", 0.0),
        worker_us=per_request.get("relai-worker", 0.0),
    )


def _table(rows: list[Row], worker_slots: int) -> str:
    header = (
        f"{'api':>4}{'workers':>8}{'echo req/s':>12}{'work req/s':>12}{'failed':>8}"
        f"{'api µs':>9}{'worker µs':>11}{'postgres µs':>13}{'redis µs':>10}"
    )
    lines = [header, "-" * len(header)]
    for r in rows:
        lines.append(
            f"{r.api:>4}{r.workers:>8}{r.echo_rps:>12.0f}{r.work_rps:>12.0f}{r.failed:>8}"
            f"{r.api_us:>9.0f}{r.worker_us:>11.0f}{r.postgres_us:>13.0f}{r.redis_us:>10.0f}"
        )
    lines.append(
        f"(µs: CPU per echo request at saturation; work: 50 ms jobs, {worker_slots} at once "
        "per worker)"
    )
    return "\n".join(lines)


@cli.command()
def main(
    apis: Annotated[str, typer.Option(help="relai-api --workers values, comma-separated")] = "1,2",
    workers: Annotated[str, typer.Option(help="relai-worker counts, comma-separated")] = "1,2,4",
    echo: Annotated[int, typer.Option(help="echo requests per stack")] = 6000,
    work: Annotated[int, typer.Option(help="50 ms jobs per stack")] = 3000,
    worker_slots: Annotated[int, typer.Option(help="RELAI_WORKER_CONCURRENCY")] = 16,
) -> None:
    started = time.perf_counter()
    rows: list[Row] = []
    for api in (int(a) for a in apis.split(",")):
        for count in (int(w) for w in workers.split(",")):
            env = {"RELAI_WORKER_CONCURRENCY": str(worker_slots)}
            with running_stack(api_workers=api, workers=count, env=env) as stack:
                with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                    row = runner.run(_measure(stack, echo=echo, work=work, api=api, workers=count))
            rows.append(row)
            print(
                f"relai-api --workers {api}, {count} x relai-worker: {row.echo_rps:.0f} echo/s, "
                f"{row.work_rps:.0f} work/s",
                flush=True,
            )
    print()
    print(_table(rows, worker_slots))
    print(f"bench.scaling took {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    cli()
