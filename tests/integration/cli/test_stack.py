"""``relai run`` end to end except for its children, which stand in for api, worker and recon
(see ``_stack_driver``): servers, schema, catalog, demo key, supervision and shutdown."""

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

from libs.db.pool import asyncpg_dsn
from libs.security import hash_api_key
from tests.integration.cli._stack_driver import MODULE
from tests.support import ServerUrls

ROOT = Path(__file__).resolve().parents[3]
READY = "Press Ctrl-C to stop."


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


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
            "RELAI_API_PORT": str(api_port),
            "RELAI_RECON_PORT": str(free_port()),
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
    for each in started:
        if each.process.poll() is None:
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
    owner = await db_pool.fetchrow(
        """SELECT u.name, u.balance FROM users u JOIN api_keys k ON k.user_id = u.id
           WHERE k.key_hash = $1""",
        hash_api_key(key[1]),
    )
    assert owner is not None
    assert dict(owner) == {"name": "demo", "balance": 1_000_000}
    assert await db_pool.fetchval("SELECT count(*) FROM offers") == 5

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

    assert run.stop() == 0
    assert (tmp_path / "data" / "postgres").is_dir()
    with pytest.raises((OSError, asyncpg.PostgresError)):
        await asyncpg.connect(asyncpg_dsn(record["DATABASE_URL"]), timeout=5)
