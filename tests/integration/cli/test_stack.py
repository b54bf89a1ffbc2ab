"""``relai run`` end to end except for its children, which stand in for api, worker, recon and the
dispatcher (see ``_stack_driver``): servers, schema, catalog, demo key, supervision and
shutdown."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from bench.stack import free_port
from libs.db.pool import asyncpg_dsn
from libs.security import hash_api_key
from services.cli.local_stack import NO_DATABASE
from tests.integration.cli._stack_driver import MODULE
from tests.processes import describe, kill_all, started_by, survivors
from tests.support import ServerUrls

ROOT = Path(__file__).resolve().parents[3]
READY = "Press Ctrl-C to stop."


@dataclass
class Launch:
    process: "subprocess.Popen[bytes]"
    output: Path
    record: Path
    api_port: int

    def text(self) -> str:
        return self.output.read_text()

    def wait_for(self, needle: str, timeout: float = 90) -> str:
        deadline = time.monotonic() + timeout
        while needle not in (text := self.text()):
            if self.process.poll() is not None:
                pytest.fail(f"relai run exited ({self.process.returncode}):\n{text}")
            if time.monotonic() > deadline:
                pytest.fail(f"no {needle!r} within {timeout}s:\n{text}")
            time.sleep(0.1)
        return text

    def stop(self, timeout: float = 60) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def child_record(self) -> dict[str, Any]:
        record: dict[str, Any] = json.loads(self.record.read_text())
        return record


@pytest.fixture
def launch(tmp_path: Path) -> Iterator[Any]:
    started: list[Launch] = []

    def start(**env: str | None) -> Launch:
        api_port = free_port()
        output, record = tmp_path / f"run{len(started)}.out", tmp_path / f"api{len(started)}.json"
        merged = {
            **os.environ,
            # Not the repository's own .relai/, where a developer's `make run` keeps its state.
            "RELAI_DATA_DIR": str(tmp_path / "data"),
            "RELAI_API_PORT": str(api_port),
            "RELAI_RECON_PORT": str(free_port()),
            "RELAI_DISPATCHER_PORT": str(free_port()),
            "RELAI_STOP_TIMEOUT": "5",
            "FAKE_API_RECORD": str(record),
            **env,
        }
        full_env = {name: value for name, value in merged.items() if value is not None}
        with output.open("wb") as sink:
            process = subprocess.Popen(
                [sys.executable, "-m", MODULE],
                cwd=ROOT,
                env=full_env,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        started.append(Launch(process, output, record, api_port))
        return started[-1]

    yield start
    for each in started:  # a test that failed or was interrupted midway
        if each.process.poll() is None:
            each.process.terminate()  # `relai run` stops its children and servers
            try:
                each.process.wait(30)
            except subprocess.TimeoutExpired:
                each.process.kill()
                each.process.wait()


def assert_gone(pid: int) -> None:
    """The process has ended (a zombie left for whoever reaps orphans here counts as ended)."""
    stat = Path(f"/proc/{pid}/stat")
    if stat.exists():
        assert stat.read_text().rsplit(")", 1)[1].split()[0] == "Z"


async def test_run_prepares_the_database_and_stops_on_sigterm(
    servers: ServerUrls, db_pool: "asyncpg.Pool[Any]", launch: Any
) -> None:
    env = {"DATABASE_URL": servers.database_url, "REDIS_URL": servers.redis_url}
    first: Launch = launch(**env)
    text = first.wait_for(READY)

    key = re.search(r"export KEY=(\S+)", text)
    assert key is not None
    api = f"http://127.0.0.1:{first.api_port}"
    assert f"{api}/svc/demo/echo" in text
    assert f"ws://127.0.0.1:{first.api_port}/ws/requests/<id>" in text
    assert "embedded" not in text
    record = first.child_record()
    assert record["DATABASE_URL"] == servers.database_url
    assert record["REDIS_URL"] == servers.redis_url
    assert f"http://127.0.0.1:{record['RELAI_DISPATCHER_PORT']}/health" in text
    owner = await db_pool.fetchrow(
        """SELECT u.name, u.balance FROM users u JOIN api_keys k ON k.user_id = u.id
           WHERE k.key_hash = $1""",
        hash_api_key(key[1]),
    )
    assert owner is not None
    assert dict(owner) == {"name": "demo", "balance": 1_000_000}
    assert await db_pool.fetchval("SELECT count(*) FROM offers") == 8

    assert first.stop() == 0
    assert "stopped" in first.text()
    assert_gone(record["pid"])

    second: Launch = launch(**env)
    second_key = re.search(r"export KEY=(\S+)", second.wait_for(READY))
    assert second.stop() == 0
    assert second_key is not None
    assert second_key[1] != key[1]
    assert await db_pool.fetchval("SELECT count(*) FROM users") == 1
    assert await db_pool.fetchval("SELECT count(*) FROM api_keys") == 2


async def test_a_dead_child_stops_the_others(servers: ServerUrls, launch: Any) -> None:
    run: Launch = launch(
        DATABASE_URL=servers.database_url,
        REDIS_URL=servers.redis_url,
        FAKE_WORKER_STATUS="3",
        FAKE_WORKER_AFTER="2",
    )

    assert run.process.wait(90) == 1
    assert "relai-worker exited with status 3" in run.text()
    assert_gone(run.child_record()["pid"])


async def test_a_busy_port_is_refused_before_anything_starts(
    servers: ServerUrls, launch: Any
) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        run: Launch = launch(
            DATABASE_URL=servers.database_url,
            REDIS_URL=servers.redis_url,
            RELAI_API_PORT=str(port),
        )
        assert run.process.wait(60) == 1
    assert f"port {port} (for API) is already in use" in run.text()
    assert not run.record.exists()


@pytest.mark.timeout(240)
async def test_run_starts_and_stops_embedded_servers_without_urls(
    launch: Any, tmp_path: Path
) -> None:
    run: Launch = launch(DATABASE_URL=None, REDIS_URL=None, RELAI_DATA_DIR=str(tmp_path / "data"))
    text = run.wait_for(READY, timeout=180)
    record = run.child_record()

    assert "starting embedded PostgreSQL and Valkey" in text
    conn = await asyncpg.connect(asyncpg_dsn(record["DATABASE_URL"]))
    try:
        assert await conn.fetchval("SELECT count(*) FROM users WHERE name = 'demo'") == 1
    finally:
        await conn.close()
    started = started_by(run.process.pid, tmp_path / "data")
    commands = "\n".join(describe(p) for p in started)
    for expected in ("pginstall/bin/postgres", "valkey-server", f"{MODULE} api"):
        assert expected in commands, f"no {expected} among\n{commands}"

    try:
        assert run.stop() == 0
        left = survivors(started, within=10)
        assert not left, "\n".join(describe(p) for p in left)
    finally:
        kill_all(started)
    assert (tmp_path / "data" / "postgres").is_dir()
    with pytest.raises((OSError, asyncpg.PostgresError)):
        await asyncpg.connect(asyncpg_dsn(record["DATABASE_URL"]), timeout=5)


def relai_without_database(*args: str, cwd: Path, **env: str) -> "subprocess.CompletedProcess[str]":
    """``relai`` as a user runs it in another terminal: no DATABASE_URL."""
    unset = {"DATABASE_URL", "RELAI_DATABASE_URL", "RELAI_DATA_DIR"}
    return subprocess.run(
        [str(Path(sys.executable).parent / "relai"), *args],
        cwd=cwd,
        env={**{k: v for k, v in os.environ.items() if k not in unset}, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_commands_use_the_database_of_the_running_stack(
    servers: ServerUrls, db_pool: "asyncpg.Pool[Any]", launch: Any, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    run: Launch = launch(DATABASE_URL=servers.database_url, REDIS_URL=servers.redis_url)
    run.wait_for(READY)
    state = json.loads((data_dir / "stack.json").read_text())
    assert state["pid"] == run.process.pid
    assert state["database_url"] == servers.database_url
    assert state["redis_url"] == servers.redis_url
    assert state["api_url"] == f"http://127.0.0.1:{run.api_port}"
    assert (data_dir / "stack.json").stat().st_mode & 0o077 == 0

    created = relai_without_database(
        "users",
        "create",
        "--name",
        "bob",
        "--credits",
        "100",
        cwd=tmp_path,
        RELAI_DATA_DIR=str(data_dir),
    )
    assert created.returncode == 0, created.stderr
    assert await db_pool.fetchval("SELECT balance FROM users WHERE name = 'bob'") == 100

    again: Launch = launch(DATABASE_URL=servers.database_url, REDIS_URL=servers.redis_url)
    assert again.process.wait(60) == 1
    assert f"a local stack is already running from {data_dir}/ (pid {run.process.pid}" in (
        again.text()
    )

    assert run.stop() == 0
    assert not (data_dir / "stack.json").exists()
    gone = relai_without_database(
        "keys", "list", "--user", "bob", cwd=tmp_path, RELAI_DATA_DIR=str(data_dir)
    )
    assert gone.returncode == 1
    assert gone.stderr.strip() == f"error: {NO_DATABASE}"


def test_without_database_url_nor_stack_the_commands_say_so(tmp_path: Path) -> None:
    for args in (
        ("users", "create", "--name", "bob", "--credits", "100"),
        ("users", "grant", "--name", "bob", "--credits", "1"),
        ("keys", "list", "--user", "bob"),
        ("catalog", "export"),
        ("config", "list"),
        ("migrate",),
    ):
        result = relai_without_database(*args, cwd=tmp_path)
        assert result.returncode == 1, (args, result.stdout, result.stderr)
        assert result.stderr.strip() == f"error: {NO_DATABASE}", args


def test_a_stale_state_file_is_ignored_with_a_message(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    state = tmp_path / ".relai" / "stack.json"
    state.parent.mkdir()
    state.write_text(
        json.dumps(
            {
                "pid": dead.pid,
                "database_url": "postgresql://postgres@127.0.0.1:1/gone",
                "redis_url": "redis://127.0.0.1:1/0",
                "api_url": "http://127.0.0.1:1",
            }
        )
    )

    result = relai_without_database(
        "users", "create", "--name", "bob", "--credits", "1", cwd=tmp_path
    )

    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"ignoring .relai/stack.json: the `relai run` that wrote it (pid {dead.pid}) is no "
        "longer running",
        f"error: {NO_DATABASE}",
    ]
