"""``make bench`` keeps working: a small run of it on the test servers completes every request."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from tests.support import ServerUrls

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


def _bench(servers: ServerUrls, *args: str) -> "subprocess.CompletedProcess[str]":
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=ROOT,
        env={
            **os.environ,
            "DATABASE_URL": servers.database_url,
            "REDIS_URL": servers.redis_url,
            # Beside the suite's own database and in its Redis database: nothing shared with a
            # `make bench` or another suite on the same servers.
            "RELAI_BENCH_DATABASE": f"{make_url(servers.database_url).database}_bench",
            "RELAI_BENCH_REDIS_DB": str(make_url(servers.redis_url).database),
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_small_bench_run_completes_every_request(servers: ServerUrls, tmp_path: Path) -> None:
    results = tmp_path / "relai.json"
    run = _bench(
        servers,
        *("bench", "--saturation", "300", "--rate", "100", "--rate-seconds", "1"),
        *("--delay-jobs", "50"),
        # Not the figures of the last `make bench` in .relai/, which the peers' table reads.
        *("--results", str(results)),
    )
    assert run.returncode == 0, run.stderr[-2000:]
    rows = re.findall(
        r"^(echo\.text at \S+|\d+ x echo\.delay 1s)\s+\S+\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)",
        run.stdout,
        flags=re.MULTILINE,
    )
    assert len(rows) == 3, run.stdout
    for _name, submitted, refused, completed, failed in rows:
        assert int(submitted) > 0
        assert (int(refused), int(failed)) == (0, 0)
        assert completed == submitted
    assert "worker RSS" in run.stdout
    figures = json.loads(results.read_text())
    assert figures["saturation"] == 300
    assert figures["sleep_jobs"] == 50
    assert figures["throughput"] > 0
    assert figures["p99_ms"] >= figures["p50_ms"] > 0
    # Where the time went at the fixed rate: each hop counted once per request (100 in 1 s),
    # twice for the results consumer (a request's started and final entries); a push for each
    # state change the load generator's WebSocket was sent (running may be folded into the end).
    hops = {
        hop: int(n)
        for hop, n in re.findall(r"^(\w+)\s+(\d+)\s+[\d.]+\s+[\d.]+$", run.stdout, re.MULTILINE)
    }
    pushes = hops.pop("push", 0)
    assert hops == {
        "commit": 100,
        "relay": 100,
        "pickup": 100,
        "handler": 100,
        "write": 100,
        "record": 200,
    }, run.stdout
    assert 100 <= pushes <= 200, run.stdout


def test_the_fairness_bench_runs_its_three_scenarios_in_both_orders(servers: ServerUrls) -> None:
    run = _bench(
        servers,
        *("bench.fairness", "--burst", "100", "--others", "3", "--slots", "5"),
        *("--flex", "60", "--priority", "3", "--load-s", "2", "--flex-behind", "3"),
    )
    assert run.returncode == 0, run.stderr[-2000:]
    # The noisy neighbour, then the priority tier: p50 / p99 figures, a goal and whether it was
    # met, in each order.
    rows = re.findall(
        r"^(fifo|fair)\s+([\d.]+) / ([\d.]+)\s+([\d.]+) / ([\d.]+)\s+[\d.]+\s+(yes|no)",
        run.stdout,
        flags=re.MULTILINE,
    )
    assert [row[0] for row in rows] == ["fifo", "fair"] * 2, run.stdout
    # Starvation: the flex jobs ended per second under the priority load, and how many of all.
    starved = re.findall(
        r"^(fifo|fair)\s+([\d.]+)\s+(\d+) of (\d+)\s+[\d.]+\s+(yes|no)$",
        run.stdout,
        flags=re.MULTILINE,
    )
    assert [row[0] for row in starved] == ["fifo", "fair"], run.stdout
    assert all(row[3] == "3" for row in starved), run.stdout
    # In arrival order, no flex job submitted behind the load ends before it.
    assert starved[0][2] == "0", run.stdout
