"""``make bench`` keeps working: a small run of it on the test servers completes every request."""

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


def test_a_small_bench_run_completes_every_request(servers: ServerUrls) -> None:
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--saturation",
            "300",
            "--rate",
            "100",
            "--rate-seconds",
            "1",
            "--delay-jobs",
            "50",
        ],
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
