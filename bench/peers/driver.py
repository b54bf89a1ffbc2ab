"""The peers' bench: the same three workloads as Relai's ``python -m bench`` against other task
queues, each peer's worker and producer run in ``.venv-peers`` (``make peers-env``), and one
table with Relai's row (read from ``.relai/bench/relai.json``, written by ``python -m bench``).

Runs in Relai's own environment, on the servers of DATABASE_URL/REDIS_URL (embedded ones when
unset): Redis db ``RELAI_BENCH_PEERS_REDIS_DB`` (13), flushed before each peer, and the
database ``RELAI_BENCH_PEERS_DATABASE`` (``relai_bench_peers``), recreated before each peer.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import signal
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from redis import Redis

from bench.stack import bench_servers
from libs.db import recreate_database
from libs.db.pool import asyncpg_dsn

ROOT = Path(__file__).resolve().parents[2]
PEERS = ("celery", "dramatiq", "taskiq", "arq", "pgqueuer")
PEERS_PYTHON = ROOT / ".venv-peers" / "bin" / "python"
RELAI_JSON = ROOT / ".relai" / "bench" / "relai.json"
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0


class PeerFailed(Exception):
    pass


@dataclass
class Figures:
    """One row of the table: a figure is None where its workload did not complete."""

    name: str
    throughput: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    drain_s: float | None = None
    note: str = ""
    failures: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return bool(self.failures)


def percentile(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (0-100) of ``values``, interpolated between the closest ranks;
    the same method as Relai's load generator (``bench.load``)."""
    if not values:
        return math.nan
    if len(values) == 1:
        return float(values[0])
    return statistics.quantiles(values, n=1000, method="inclusive")[int(p * 10) - 1]


def parse_completions(entries: Sequence[bytes | str]) -> list[tuple[float, float]]:
    """``(sent, done)`` pairs from the ``"<sent_ts> <done_ts>"`` strings the tasks pushed."""
    pairs = []
    for entry in entries:
        text = entry.decode() if isinstance(entry, bytes) else entry
        sent, done = text.split()
        pairs.append((float(sent), float(done)))
    return pairs


def throughput(pairs: Sequence[tuple[float, float]]) -> float:
    """Tasks per second: all of them over the time from the first enqueue to the last
    completion."""
    first = min(sent for sent, _ in pairs)
    last = max(done for _, done in pairs)
    return len(pairs) / max(last - first, 1e-9)


def latencies_ms(pairs: Sequence[tuple[float, float]]) -> list[float]:
    return [(done - sent) * 1000 for sent, done in pairs]


def drain_after_last_submit(pairs: Sequence[tuple[float, float]]) -> float:
    return max(done for _, done in pairs) - max(sent for sent, _ in pairs)


def _cell(value: float | None, digits: int) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def format_table(rows: Sequence[Figures], *, rate: float, sleep_jobs: int) -> str:
    header = (
        f"{'queue':<10}{'tasks/s':>9}{f'p50 ms @{rate:.0f}/s':>16}{f'p99 ms @{rate:.0f}/s':>16}"
        f"{f'{sleep_jobs}x1s drain s':>17}  note"
    )
    lines = [header, "-" * len(header)]
    for row in rows:
        note = "; ".join([*([row.note] if row.note else []), *row.failures])
        lines.append(
            f"{row.name:<10}{_cell(row.throughput, 0):>9}{_cell(row.p50_ms, 1):>16}"
            f"{_cell(row.p99_ms, 1):>16}{_cell(row.drain_s, 2):>17}  {note}".rstrip()
        )
    return "\n".join(lines)


def _present(value: float | None) -> bool:
    return value is not None and not math.isnan(value) and value > 0


def ratio_line(relai: Figures | None, peers: Sequence[Figures], *, rate: float) -> str | None:
    """``relai vs best peer: ...``: the best peer is chosen per column (the highest throughput,
    the lowest p99) among the peers that have that figure; None without Relai's row or any
    peer figure to compare with."""
    if relai is None:
        return None
    parts = []
    with_throughput = [p for p in peers if _present(p.throughput)]
    if _present(relai.throughput) and with_throughput:
        best = max(with_throughput, key=lambda p: p.throughput or 0.0)
        ratio = (relai.throughput or 0.0) / (best.throughput or 1.0)
        parts.append(f"throughput ratio {ratio:.2f} ({best.name})")
    else:
        parts.append("throughput ratio - (no figures)")
    with_p99 = [p for p in peers if _present(p.p99_ms)]
    if _present(relai.p99_ms) and with_p99:
        best = min(with_p99, key=lambda p: p.p99_ms or math.inf)
        ratio = (relai.p99_ms or 0.0) / (best.p99_ms or 1.0)
        parts.append(f"p99 at {rate:.0f}/s ratio {ratio:.2f} ({best.name})")
    else:
        parts.append(f"p99 at {rate:.0f}/s ratio - (no figures)")
    return "relai vs best peer: " + ", ".join(parts)


def read_relai(path: Path = RELAI_JSON) -> Figures | None:
    """Relai's row, from the figures ``python -m bench`` wrote; None if there are none."""
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    return Figures(
        name="relai",
        throughput=data.get("throughput"),
        p50_ms=data.get("p50_ms"),
        p99_ms=data.get("p99_ms"),
        drain_s=data.get("drain_s"),
        note=f"rate {data.get('rate', 0):.0f}/s, {data.get('date', 'undated')}",
    )


@dataclass(frozen=True)
class Options:
    n: int = 20_000
    rate: float = 500.0
    rate_seconds: float = 10.0
    sleep_jobs: int = 1000


@dataclass
class Servers:
    redis_url: str
    database_url: str

    @property
    def env(self) -> dict[str, str]:
        keep = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHON"))}
        return {
            **keep,
            "PYTHONPATH": str(ROOT),
            "PEERS_REDIS_URL": self.redis_url,
            "PEERS_DATABASE_URL": self.database_url,
        }


@contextmanager
def peer_servers() -> Iterator[Servers]:
    database = os.environ.get("RELAI_BENCH_PEERS_DATABASE", "relai_bench_peers")
    redis_db = os.environ.get("RELAI_BENCH_PEERS_REDIS_DB", "13")
    with bench_servers(database, redis_db, prefix="relai-bench-peers-") as (database_url, redis):
        yield Servers(redis_url=redis, database_url=asyncpg_dsn(database_url))


class Worker:
    def __init__(self, peer: str, servers: Servers, *, concurrent: bool) -> None:
        self.log: IO[str] = tempfile.TemporaryFile("w+")
        command = [str(PEERS_PYTHON), "-m", f"bench.peers.{peer}_peer", "worker"]
        self.process = subprocess.Popen(
            [*command, *(["--concurrent"] if concurrent else [])],
            cwd=ROOT,
            env=servers.env,
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def check(self) -> None:
        if self.process.poll() is not None:
            raise PeerFailed(f"worker exited ({self.process.returncode})")

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read()

    def stop(self) -> None:
        """SIGTERM to the worker's process group, SIGKILL after ``STOP_TIMEOUT_S``."""
        for sig, wait in ((signal.SIGTERM, STOP_TIMEOUT_S), (signal.SIGKILL, 5.0)):
            if self.process.poll() is not None:
                break
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.process.wait(wait)
            except subprocess.TimeoutExpired:
                continue
        # Children left behind by a worker that exited first (a prefork pool).
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.log.close()


class Bench:
    def __init__(self, peer: str, servers: Servers, options: Options) -> None:
        self.peer, self.servers, self.options = peer, servers, options
        self.redis = Redis.from_url(servers.redis_url)
        self.logs: list[str] = []

    def produce(self, worker: Worker, workload: str, n: int, run: str, timeout: float) -> None:
        command = [str(PEERS_PYTHON), "-m", f"bench.peers.{self.peer}_peer", "produce"]
        args = ["--workload", workload, "--n", str(n), "--rate", str(self.options.rate)]
        try:
            done = subprocess.run(
                [*command, *args, "--run", run],
                cwd=ROOT,
                env=self.servers.env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as e:
            raise PeerFailed(f"producer timed out after {timeout:.0f} s") from e
        if done.returncode:
            self.logs.append(f"producer ({workload}):\n{done.stderr[-3000:]}")
            raise PeerFailed(f"producer failed ({done.returncode})")

    def completions(
        self, worker: Worker, run: str, n: int, timeout: float
    ) -> list[tuple[float, float]]:
        key = f"peerbench:done:{run}"
        deadline = time.monotonic() + timeout
        while (have := int(self.redis.llen(key))) < n:
            worker.check()
            if time.monotonic() > deadline:
                raise PeerFailed(f"timed out: {have}/{n} done after {timeout:.0f} s")
            time.sleep(0.05)
        return parse_completions(self.redis.lrange(key, 0, -1))

    def wait_ready(self, worker: Worker) -> None:
        """A one-task round trip, again every few seconds (a stream consumer group made at the
        worker's start misses what was sent before it) until the worker answers."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        runs = []
        while time.monotonic() < deadline:
            worker.check()
            runs.append(f"{self.peer}-ready-{uuid.uuid4().hex[:8]}")
            try:
                self.produce(worker, "noop", 1, runs[-1], timeout=30)
            except PeerFailed:
                time.sleep(1)
                continue
            until = time.monotonic() + 5
            while time.monotonic() < until:
                worker.check()
                if any(self.redis.llen(f"peerbench:done:{r}") for r in runs):
                    self.logs.clear()
                    return
                time.sleep(0.05)
        raise PeerFailed(f"worker not ready after {READY_TIMEOUT_S:.0f} s")

    def figures(self) -> Figures:
        row = Figures(name=self.peer)
        o = self.options
        stages: list[tuple[bool, list[str]]] = [(False, ["noop", "rate"]), (True, ["sleep"])]
        for concurrent, workloads in stages:
            worker = Worker(self.peer, self.servers, concurrent=concurrent)
            try:
                try:
                    self.wait_ready(worker)
                except PeerFailed as e:
                    row.failures.append(f"{'/'.join(workloads)}: {e}")
                    self.logs.append(f"worker:\n{worker.output()[-3000:]}")
                    continue
                for workload in workloads:
                    n = {"noop": o.n, "rate": int(o.rate * o.rate_seconds), "sleep": o.sleep_jobs}[
                        workload
                    ]
                    timeout = {
                        "noop": max(60.0, n / 100),
                        "rate": o.rate_seconds + 60.0,
                        "sleep": 60.0 + n / 50,
                    }[workload]
                    run = f"{self.peer}-{workload}-{uuid.uuid4().hex[:8]}"
                    try:
                        self.produce(worker, workload, n, run, timeout)
                        pairs = self.completions(worker, run, n, timeout)
                    except PeerFailed as e:
                        row.failures.append(f"{workload}: {e}")
                        self.logs.append(f"worker:\n{worker.output()[-3000:]}")
                        continue
                    if workload == "noop":
                        row.throughput = throughput(pairs)
                    elif workload == "rate":
                        values = latencies_ms(pairs)
                        row.p50_ms, row.p99_ms = percentile(values, 50), percentile(values, 99)
                    else:
                        row.drain_s = drain_after_last_submit(pairs)
            finally:
                worker.stop()
        return row


async def _reset(servers: Servers) -> None:
    await recreate_database(servers.database_url)


def run_peer(peer: str, servers: Servers, options: Options) -> Figures:
    redis = Redis.from_url(servers.redis_url)
    try:
        redis.flushdb()
    finally:
        redis.close()
    asyncio.run(_reset(servers))
    bench = Bench(peer, servers, options)
    try:
        row = bench.figures()
    finally:
        bench.redis.close()
    if row.failed:
        print(f"{peer} failed: {'; '.join(row.failures)}")
        for log in bench.logs:
            print(log.rstrip())
    return row


def main(options: Options, only: Sequence[str], relai_json: Path = RELAI_JSON) -> int:
    unknown = set(only) - set(PEERS)
    if unknown:
        print(f"unknown peers: {', '.join(sorted(unknown))} (known: {', '.join(PEERS)})")
        return 2
    if not PEERS_PYTHON.exists():
        print(f"no {PEERS_PYTHON.relative_to(ROOT)}: run make peers-env")
        return 2
    started = time.perf_counter()
    rows = []
    with peer_servers() as servers:
        for peer in only or PEERS:
            print(f"peer bench: {peer} ...", flush=True)
            rows.append(run_peer(peer, servers, options))
    relai = read_relai(relai_json)
    print()
    if relai is None:
        print(f"no Relai figures in {relai_json} (python -m bench writes them): the peers only")
    print(
        f"{options.n} no-op tasks; {options.rate:.0f}/s offered for {options.rate_seconds:.0f} s; "
        f"{options.sleep_jobs} tasks of 1 s (one worker each, Redis for completions)"
    )
    print(format_table([*([relai] if relai else []), *rows], **_labels(options)))
    line = ratio_line(relai, rows, rate=options.rate)
    if line:
        print(line)
    print(f"peers bench took {time.perf_counter() - started:.0f} s")
    return 0


def _labels(options: Options) -> dict[str, Any]:
    return {"rate": options.rate, "sleep_jobs": options.sleep_jobs}
