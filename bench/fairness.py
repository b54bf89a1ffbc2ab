"""``python -m bench.fairness``: the noisy neighbour, in arrival order and with fair scheduling.

User A submits a burst of short jobs (``bench/work``: 50 ms each) at once; as soon as every one
of them is accepted, user B submits a few. B's latency (submit → final state on the WebSocket)
is compared with B's latency on the same system idle. In arrival order (``fifo``) B waits for
A's whole backlog; with ``RELAI_WORKER_SCHEDULING=fair`` B's jobs run in turn with A's, and the
goal is B's p99 ≤ 2 × B's idle p99 + one job's duration.

The worker runs with fewer slots than ``make bench``'s (``--slots``), so that A's backlog is a
queue of a few seconds rather than all in flight at once.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Annotated

import typer
import uvloop

from bench.load import LoadResult, run_load
from bench.stack import Running, running_stack

cli = typer.Typer(add_completion=False)

JOB_MS = 50
"""The duration of one ``bench/work`` job (the bench catalog's ``delay_ms``)."""
MODES = ("fifo", "fair")


@dataclass(frozen=True)
class Figures:
    mode: str
    idle: LoadResult
    behind: LoadResult
    burst: LoadResult

    @property
    def goal_ms(self) -> float:
        return 2 * self.idle.percentile(99) + JOB_MS

    @property
    def met(self) -> bool:
        return self.behind.completed == self.behind.submitted and (
            self.behind.percentile(99) <= self.goal_ms
        )


async def _measure(stack: Running, mode: str, burst: int, others: int) -> Figures:
    b = await stack.new_user("b")
    idle = await run_load(stack.url, b, name="B idle", path="/svc/bench/work", total=others)
    a = await stack.new_user("a")
    flood = LoadResult(name="A burst", offered_rps=None)
    flooding = asyncio.create_task(
        run_load(stack.url, a, name=flood.name, path="/svc/bench/work", total=burst, result=flood)
    )
    while flood.submitted + flood.rejected.total() < burst and not flooding.done():
        await asyncio.sleep(0.01)
    behind = await run_load(
        stack.url, b, name="B behind A", path="/svc/bench/work", total=others, concurrency=others
    )
    await flooding
    return Figures(mode, idle, behind, flood)


def table(figures: list[Figures]) -> str:
    header = (
        f"{'scheduling':<12}{'B idle p50/p99 ms':>20}{'B behind A p50/p99 ms':>24}"
        f"{'goal p99 ms':>13}{'met':>5}{'A done s':>10}"
    )
    lines = [header, "-" * len(header)]
    for f in figures:
        idle = f"{f.idle.percentile(50):.0f} / {f.idle.percentile(99):.0f}"
        behind = f"{f.behind.percentile(50):.0f} / {f.behind.percentile(99):.0f}"
        a_done = max(f.burst.finished.values(), default=f.burst.first_submit) - (
            f.burst.first_submit
        )
        lines.append(
            f"{f.mode:<12}{idle:>20}{behind:>24}{f.goal_ms:>13.0f}"
            f"{'yes' if f.met else 'no':>5}{a_done:>10.1f}"
        )
    return "\n".join(lines)


@cli.command()
def main(
    burst: Annotated[int, typer.Option(help="A's jobs, submitted at once")] = 10_000,
    others: Annotated[int, typer.Option(help="B's jobs, submitted behind A's")] = 20,
    slots: Annotated[int, typer.Option(help="the worker's RELAI_WORKER_CONCURRENCY")] = 10,
) -> None:
    figures: list[Figures] = []
    for mode in MODES:
        env = {"RELAI_WORKER_SCHEDULING": mode, "RELAI_WORKER_CONCURRENCY": str(slots)}
        with running_stack(api_workers=1, workers=1, env=env) as stack:
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                figures.append(runner.run(_measure(stack, mode, burst, others)))
    print()
    print(
        f"noisy neighbour: A submits {burst} jobs of {JOB_MS} ms at once, then B {others}; "
        f"1 worker with {slots} slots"
    )
    print(table(figures))


if __name__ == "__main__":
    cli()
