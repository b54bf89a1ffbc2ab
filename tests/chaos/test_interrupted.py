"""A test run stopped by SIGTERM (a timeout, a cancelled CI job) leaves no process behind: not
the embedded Postgres and Valkey, not the chaos stack's api, workers, recon, dispatcher and
Redis."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.processes import describe, kill_all, started_by, survivors

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[2]
SESSION = Path(__file__).with_name("_interrupted_session.py")
EXPECTED = (
    "pginstall/bin/postgres",
    "valkey-server",
    "relai-api",
    "relai-worker",
    "relai-recon",
    "relai-dispatcher",
)


def test_sigterm_stops_the_run_and_every_process_it_started(tmp_path: Path) -> None:
    ready, basetemp, output = tmp_path / "ready", tmp_path / "run", tmp_path / "run.out"
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env["RELAI_INTERRUPT_READY"] = str(ready)
    argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--basetemp", str(basetemp)]
    with output.open("wb") as sink:
        run = subprocess.Popen(
            [*argv, str(SESSION.relative_to(ROOT))],
            cwd=ROOT,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    started = []
    try:
        deadline = time.monotonic() + 180
        while not ready.exists():
            if run.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the run never got its stack up:\n{output.read_text()}")
            time.sleep(0.2)
        started = started_by(run.pid, basetemp)
        commands = "\n".join(describe(p) for p in started)
        for expected in EXPECTED:
            assert expected in commands, f"no {expected} among\n{commands}"

        run.send_signal(signal.SIGTERM)
        code = run.wait(120)
        text = output.read_text()
        left = survivors(started, within=10)
        assert not left, "\n".join(describe(p) for p in left) + f"\n{text}"
        assert code == pytest.ExitCode.INTERRUPTED, text
        assert "KeyboardInterrupt" in text
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
        kill_all(started)
