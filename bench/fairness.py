"""``python -m bench.fairness``: three scenarios, each in arrival order and with fair scheduling.

*Noisy neighbour.* User A submits a burst of short jobs (``bench/work``: 50 ms each) at once;
as soon as every one of them is accepted, user B submits a few. B's latency (submit → final
state on the WebSocket) is compared with B's latency on the same system idle. In arrival order
(``fifo``) B waits for A's whole backlog; with ``RELAI_WORKER_SCHEDULING=fair`` B's jobs run in
turn with A's, and the goal is B's p99 ≤ 2 × B's idle p99 + one job's duration.

*Priority.* User C submits a backlog of ``flex`` jobs (``bench/work``) at once, then a few
``priority`` ones; the priority ones' wait (submit → running on the WebSocket) is compared with
their wait on the same system idle. Under ``fair`` each tier waits in a queue of its own, taken
by weight, and the goal is their p99 wait ≤ their idle p99 wait + one job's duration. One user
submits both, so that only the tiers, not the turns between users, can put them first.

*Starvation.* User D submits ``priority`` jobs of 1 s (``bench/sleep``) enough to keep every
slot busy for ``--load-s`` seconds, then a few ``flex`` jobs of 50 ms: the flex jobs ended per
second while priority jobs are waiting (until the last one starts). In arrival order none ends
before the load; the goal of ``fair`` is more than none (with the default weights, about one
slot freed in 17 goes to flex).

The tier is asked for with the ``Relai-Tier`` header of ``POST /svc/{service}/{action}``: an API
that does not honour it runs every job at ``default``, and then the priority jobs wait behind
their own user's backlog under ``fair`` too.

The worker runs with fewer slots than ``make bench``'s (``--slots``), so that a backlog is a
queue of a few seconds rather than all in flight at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

import typer
import uvloop

from bench.load import LoadResult, run_load
from bench.stack import Running, running_stack

cli = typer.Typer(add_completion=False)

JOB_MS = 50
"""The duration of one ``bench/work`` job (the bench catalog's ``delay_ms``)."""
LOAD_JOB_S = 1
"""The duration of one ``bench/sleep`` job."""
MODES = ("fifo", "fair")
TIER_HEADER = "Relai-Tier"


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


@dataclass(frozen=True)
class PriorityFigures:
    mode: str
    idle: LoadResult
    behind: LoadResult
    backlog: LoadResult

    @property
    def goal_ms(self) -> float:
        return self.idle.wait_percentile(99) + JOB_MS

    @property
    def met(self) -> bool:
        return self.behind.completed == self.behind.submitted > 0 and (
            self.behind.wait_percentile(99) <= self.goal_ms
        )


@dataclass(frozen=True)
class StarvationFigures:
    mode: str
    load: LoadResult
    flex: LoadResult

    @property
    def load_s(self) -> float:
        return self.load.done_after_first_submit_s

    @property
    def _contended(self) -> float:
        """When the last priority job started: until then, priority jobs were waiting (after
        it, the flex ones have the free slots to themselves)."""
        return max(self.load.started.values(), default=0.0)

    @property
    def flex_during(self) -> int:
        """Flex jobs ended while priority jobs were waiting."""
        end = self._contended
        return sum(1 for i in self.flex.submit_started if self.flex.finished.get(i, end) < end)

    @property
    def flex_per_s(self) -> float:
        return self.flex_during / max(self._contended - self.flex.first_submit, 1e-9)

    @property
    def met(self) -> bool:
        done = self.flex.completed == self.flex.submitted > 0
        return done and self.load.completed == self.load.submitted and self.flex_per_s > 0


def _tier(tier: str) -> dict[str, str]:
    return {TIER_HEADER: tier}


async def _flood(
    stack: Running, key: str, result: LoadResult, path: str, total: int, tier: str
) -> asyncio.Task[LoadResult]:
    """Submit ``total`` jobs at ``tier`` at once; returns once every one is accepted (the task
    then waits for them to end)."""
    flooding = asyncio.create_task(
        run_load(
            stack.url,
            key,
            name=result.name,
            path=path,
            total=total,
            result=result,
            headers=_tier(tier),
        )
    )
    while result.submitted + result.rejected.total() < total and not flooding.done():
        await asyncio.sleep(0.01)
    return flooding


async def _priority(stack: Running, mode: str, flex: int, priority: int) -> PriorityFigures:
    c = await stack.new_user("c")
    idle = await run_load(
        stack.url,
        c,
        name="priority idle",
        path="/svc/bench/work",
        total=priority,
        concurrency=priority,
        headers=_tier("priority"),
    )
    backlog = LoadResult(name="flex backlog", offered_rps=None)
    flooding = await _flood(stack, c, backlog, "/svc/bench/work", flex, "flex")
    behind = await run_load(
        stack.url,
        c,
        name="priority behind flex",
        path="/svc/bench/work",
        total=priority,
        concurrency=priority,
        headers=_tier("priority"),
    )
    await flooding
    return PriorityFigures(mode, idle, behind, backlog)


async def _starvation(
    stack: Running, mode: str, load_s: int, slots: int, flex: int
) -> StarvationFigures:
    d = await stack.new_user("d")
    load = LoadResult(name="priority load", offered_rps=None)
    loading = await _flood(
        stack, d, load, "/svc/bench/sleep", load_s * slots // LOAD_JOB_S, "priority"
    )
    behind = await run_load(
        stack.url,
        d,
        name="flex under load",
        path="/svc/bench/work",
        total=flex,
        concurrency=flex,
        headers=_tier("flex"),
    )
    await loading
    return StarvationFigures(mode, load, behind)


def _p50_p99(percentile: Callable[[float], float]) -> str:
    return f"{percentile(50):.0f} / {percentile(99):.0f}"


def table(figures: list[Figures]) -> str:
    header = (
        f"{'scheduling':<12}{'B idle p50/p99 ms':>20}{'B behind A p50/p99 ms':>24}"
        f"{'goal p99 ms':>13}{'met':>5}{'A done s':>10}"
    )
    lines = [header, "-" * len(header)]
    for f in figures:
        idle, behind = _p50_p99(f.idle.percentile), _p50_p99(f.behind.percentile)
        lines.append(
            f"{f.mode:<12}{idle:>20}{behind:>24}{f.goal_ms:>13.0f}"
            f"{'yes' if f.met else 'no':>5}{f.burst.done_after_first_submit_s:>10.1f}"
        )
    return "\n".join(lines)


def priority_table(figures: list[PriorityFigures]) -> str:
    header = (
        f"{'scheduling':<12}{'idle wait p50/p99 ms':>22}{'behind flex wait p50/p99 ms':>30}"
        f"{'goal p99 ms':>13}{'met':>5}{'flex done s':>13}"
    )
    lines = [header, "-" * len(header)]
    for f in figures:
        idle, behind = _p50_p99(f.idle.wait_percentile), _p50_p99(f.behind.wait_percentile)
        lines.append(
            f"{f.mode:<12}{idle:>22}{behind:>30}{f.goal_ms:>13.0f}"
            f"{'yes' if f.met else 'no':>5}{f.backlog.done_after_first_submit_s:>13.1f}"
        )
    return "\n".join(lines)


def starvation_table(figures: list[StarvationFigures]) -> str:
    header = (
        f"{'scheduling':<12}{'flex ended/s under load':>25}{'flex ended under load':>23}"
        f"{'load s':>8}{'met':>5}"
    )
    lines = [header, "-" * len(header)]
    for f in figures:
        during = f"{f.flex_during} of {f.flex.submitted}"
        lines.append(
            f"{f.mode:<12}{f.flex_per_s:>25.2f}{during:>23}{f.load_s:>8.1f}"
            f"{'yes' if f.met else 'no':>5}"
        )
    return "\n".join(lines)


@dataclass(frozen=True)
class Run:
    noisy: Figures
    priority: PriorityFigures
    starvation: StarvationFigures


async def _scenarios(stack: Running, mode: str, sizes: dict[str, int]) -> Run:
    return Run(
        await _measure(stack, mode, sizes["burst"], sizes["others"]),
        await _priority(stack, mode, sizes["flex"], sizes["priority"]),
        await _starvation(stack, mode, sizes["load_s"], sizes["slots"], sizes["flex_behind"]),
    )


@cli.command()
def main(
    burst: Annotated[int, typer.Option(help="A's jobs, submitted at once")] = 10_000,
    others: Annotated[int, typer.Option(help="B's jobs, submitted behind A's")] = 20,
    slots: Annotated[int, typer.Option(help="the worker's RELAI_WORKER_CONCURRENCY")] = 10,
    flex: Annotated[int, typer.Option(help="C's flex jobs, submitted at once")] = 5_000,
    priority: Annotated[int, typer.Option(help="C's priority jobs, behind the flex")] = 20,
    load_s: Annotated[int, typer.Option(help="seconds of D's priority load")] = 20,
    flex_behind: Annotated[int, typer.Option(help="D's flex jobs, under the load")] = 20,
) -> None:
    sizes = {
        "burst": burst,
        "others": others,
        "slots": slots,
        "flex": flex,
        "priority": priority,
        "load_s": load_s,
        "flex_behind": flex_behind,
    }
    runs: list[Run] = []
    for mode in MODES:
        env = {"RELAI_WORKER_SCHEDULING": mode, "RELAI_WORKER_CONCURRENCY": str(slots)}
        with running_stack(api_workers=1, workers=1, env=env) as stack:
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                runs.append(runner.run(_scenarios(stack, mode, sizes)))
    print()
    print(
        f"noisy neighbour: A submits {burst} jobs of {JOB_MS} ms at once, then B {others}; "
        f"1 worker with {slots} slots"
    )
    print(table([r.noisy for r in runs]))
    print()
    print(
        f"priority: C submits {flex} flex jobs of {JOB_MS} ms at once, then {priority} priority "
        f"ones ({TIER_HEADER} header); wait = submit → running"
    )
    print(priority_table([r.priority for r in runs]))
    print()
    print(
        f"starvation: D submits {load_s * slots // LOAD_JOB_S} priority jobs of {LOAD_JOB_S} s "
        f"at once ({slots} slots busy ~{load_s} s), then {flex_behind} flex jobs of {JOB_MS} ms"
    )
    print(starvation_table([r.starvation for r in runs]))


if __name__ == "__main__":
    cli()
