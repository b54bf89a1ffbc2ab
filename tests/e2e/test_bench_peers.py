"""``make bench``'s peers (bench/peers) keep working: a tiny run of the driver gets every
workload's figures from every peer task queue, on the test servers."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from bench.peers.driver import PEERS, PEERS_PYTHON
from tests.support import ServerUrls

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
NUMBER = r"\d+(?:\.\d+)?"


def test_a_tiny_peers_run_has_figures_for_every_peer(servers: ServerUrls, tmp_path: Path) -> None:
    if not PEERS_PYTHON.exists():
        pytest.fail(f"no {PEERS_PYTHON.relative_to(ROOT)}: run make peers-env")
    relai = tmp_path / "relai.json"
    relai.write_text('{"date": "today", "throughput": 1000.0, "rate": 100, "p50_ms": 5.0, '
                     '"p99_ms": 20.0, "drain_s": 1.1}')  # fmt: skip
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.peers",
            "--n",
            "200",
            "--rate",
            "100",
            "--rate-seconds",
            "1",
            "--sleep-jobs",
            "20",
            "--relai",
            str(relai),
        ],  # fmt: skip
        cwd=ROOT,
        env={
            **os.environ,
            "DATABASE_URL": servers.database_url,
            "REDIS_URL": servers.redis_url,
            # Beside the suite's own database and in its Redis database: nothing shared with a
            # `make bench` or another suite on the same servers.
            "RELAI_BENCH_PEERS_DATABASE": f"{make_url(servers.database_url).database}_bench_peers",
            "RELAI_BENCH_PEERS_REDIS_DB": str(make_url(servers.redis_url).database),
        },
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    figures = rf"\s+({NUMBER})\s+({NUMBER})\s+({NUMBER})\s+({NUMBER})"
    rows = {
        name: ([float(v) for v in values[:4]], values[4].strip())
        for name, *values in re.findall(rf"^(\w+){figures}(.*)$", run.stdout, re.MULTILINE)
    }
    assert set(rows) == {"relai", *PEERS}, run.stdout
    assert rows["relai"][1] == "rate 100/s, today"
    for peer in PEERS:
        (tasks_per_s, p50, p99, drain), note = rows[peer]
        assert note == "", run.stdout
        assert tasks_per_s > 0, run.stdout
        assert 0 < p50 <= p99, run.stdout
        # 20 tasks of 1 s at once: the last done about 1 s after the last was sent.
        assert 0.9 < drain < 10, run.stdout
    assert re.search(
        rf"^relai vs best peer: throughput ratio {NUMBER} \(\w+\), "
        rf"p99 at 100/s ratio {NUMBER} \(\w+\)$",
        run.stdout,
        re.MULTILINE,
    ), run.stdout
