"""``make bench``: end-to-end throughput, latency (and where it goes, hop by hop) and worker
memory, on the real processes.

Everything (servers, API, workers and this load generator) shares the machine, as it would on
a developer's laptop; the figures say what one box sustains, not what a cluster would.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import time
from pathlib import Path
from typing import Annotated

import typer
import uvloop

from bench import hops
from bench.load import LoadResult, run_load
from bench.stack import Running, running_stack

cli = typer.Typer(add_completion=False)

RESULTS = Path(__file__).resolve().parent.parent / ".relai" / "bench" / "relai.json"
"""Where the figures are kept for ``python -m bench.peers``'s comparison table."""

SETTLE_S = 3.0
"""Pause between scenarios, so that one does not measure the tail of the previous."""


def _table(results: list[LoadResult]) -> str:
    header = (
        f"{'scenario':<28}{'offered/s':>10}{'submitted':>10}{'refused':>8}{'completed':>10}{'failed':>7}"
        f"{'req/s':>9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}"
    )
    lines = [header, "-" * len(header)]
    for r in results:
        offered = f"{r.offered_rps:.0f}" if r.offered_rps else "max"
        lines.append(
            f"{r.name:<28}{offered:>10}{r.submitted:>10}{r.rejected.total():>8}{r.completed:>10}"
            f"{r.failed:>7}"
            f"{r.throughput:>9.0f}{r.percentile(50):>9.1f}{r.percentile(95):>9.1f}"
            f"{r.percentile(99):>9.1f}"
        )
    return "\n".join(lines)


async def _memory_scenario(stack: Running, key: str, jobs: int) -> tuple[LoadResult, float]:
    peak = 0.0
    done = asyncio.Event()

    async def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, stack.worker_rss_mb())
            await asyncio.sleep(0.05)

    sampler = asyncio.create_task(sample())
    result = await run_load(
        stack.url,
        key,
        name=f"{jobs} x echo.delay 1s",
        path="/svc/bench/sleep",
        total=jobs,
        concurrency=64,
    )
    done.set()
    await sampler
    return result, peak


def write_results(
    path: Path, *, rate: float, at_rate: LoadResult, saturated: LoadResult, memory: LoadResult
) -> None:
    """The figures the peers' table compares (``bench/peers``), with the date they were made."""
    path.parent.mkdir(parents=True, exist_ok=True)
    figures = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "throughput": saturated.throughput,
        "saturation": saturated.submitted,
        "rate": rate,
        "p50_ms": at_rate.percentile(50),
        "p99_ms": at_rate.percentile(99),
        "sleep_jobs": memory.submitted,
        "drain_s": memory.drain_after_last_submit_s,
    }
    path.write_text(json.dumps(figures, indent=2) + "\n")


async def _scenarios(
    stack: Running,
    *,
    saturation: int,
    rate: float,
    rate_seconds: float,
    delay_jobs: int,
    results_path: Path,
) -> None:
    results: list[LoadResult] = []
    warm = await stack.new_user("warmup")
    await run_load(stack.url, warm, name="warm-up", path="/svc/bench/echo", total=2000)
    await asyncio.sleep(SETTLE_S)

    key = await stack.new_user("fixed-rate")
    hops_before = await asyncio.to_thread(hops.scrape, stack.metrics_urls)
    results.append(
        await run_load(
            stack.url,
            key,
            name=f"echo.text at {rate:.0f}/s",
            path="/svc/bench/echo",
            total=int(rate * rate_seconds),
            rate=rate,
        )
    )
    at_rate = (await asyncio.to_thread(hops.scrape, stack.metrics_urls)).minus(hops_before)
    await asyncio.sleep(SETTLE_S)
    key = await stack.new_user("saturation")
    before = stack.cpu_seconds()
    saturated = await run_load(
        stack.url,
        key,
        name="echo.text at saturation",
        path="/svc/bench/echo",
        total=saturation,
        concurrency=64,
    )
    results.append(saturated)
    cpu_per_request = {
        part: (used - before.get(part, 0.0)) / max(saturated.completed, 1) * 1e6
        for part, used in stack.cpu_seconds().items()
    }
    await asyncio.sleep(SETTLE_S)
    key = await stack.new_user("memory")
    idle_rss = stack.worker_rss_mb()
    memory, peak_rss = await _memory_scenario(stack, key, delay_jobs)
    results.append(memory)
    write_results(results_path, rate=rate, at_rate=results[0], saturated=saturated, memory=memory)
    print()
    print(_table(results))
    print()
    print(
        "CPU per request at saturation (µs): "
        + ", ".join(
            f"{part} {us:.0f}"
            for part, us in sorted(cpu_per_request.items(), key=lambda kv: -kv[1])
        )
    )
    print()
    print(f"where the time goes at {rate:.0f}/s offered, hop by hop (docs/observability.md):")
    print(hops.table(at_rate))
    reconnects = sum(r.reconnects for r in results)
    if reconnects:
        print(f"the load generator's WebSocket was closed and resumed {reconnects} times")
    print(
        f"worker RSS: {idle_rss:.0f} MB idle, {peak_rss:.0f} MB peak with {delay_jobs} "
        f"echo.delay jobs of 1 s in flight; last result {memory.drain_after_last_submit_s:.2f} s "
        "after the last submit"
    )


@cli.command()
def main(
    api_workers: Annotated[int, typer.Option(help="relai-api --workers")] = 1,
    workers: Annotated[int, typer.Option(help="relai-worker processes")] = 1,
    saturation: Annotated[int, typer.Option(help="requests in the saturation run")] = 20_000,
    rate: Annotated[float, typer.Option(help="offered load of the fixed-rate run")] = 500,
    rate_seconds: Annotated[float, typer.Option(help="length of the fixed-rate run")] = 10,
    delay_jobs: Annotated[int, typer.Option(help="1 s echo.delay jobs in the memory run")] = 1000,
    results: Annotated[
        Path, typer.Option(help="where to write the figures for python -m bench.peers")
    ] = RESULTS,
) -> None:
    started = time.perf_counter()
    with running_stack(api_workers=api_workers, workers=workers) as stack:
        print(f"stack: relai-api --workers {api_workers}, {workers} x relai-worker at {stack.url}")
        scenarios = _scenarios(
            stack,
            saturation=saturation,
            rate=rate,
            rate_seconds=rate_seconds,
            delay_jobs=delay_jobs,
            results_path=results,
        )
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(scenarios)
    print(f"figures written to {results}")
    print(f"bench took {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    cli()
