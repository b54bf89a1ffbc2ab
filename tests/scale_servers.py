"""The servers of a deployment past one machine, started by a test on free loopback ports: a
Sentinel set (a primary, a replica, three sentinels) and a PgBouncer in transaction pooling mode
in front of the suite's Postgres.

They are Debian's ``redis-sentinel`` (``redis-server`` in sentinel mode) and ``pgbouncer``. A
missing binary skips the test, unless ``RELAI_REQUIRE_SCALE_SERVERS`` (or ``CI``) is set: CI
installs them (``.ci/run``), so there their absence fails."""

from __future__ import annotations

import asyncio
import configparser
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis
from sqlalchemy.engine import make_url

from tests.integration.api.conftest import free_port
from tests.proxy import TcpProxy, proxy_for

INSTALL = "apt-get install redis-sentinel pgbouncer"
SERVICE = "relai"


def required() -> bool:
    return bool(os.environ.get("RELAI_REQUIRE_SCALE_SERVERS") or os.environ.get("CI"))


def binary(*names: str) -> str:
    """The first of ``names`` on PATH (or in /usr/sbin); else the test is skipped, or fails
    where required."""
    for name in names:
        found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin")
        if found is not None:
            return found
    why = f"{' or '.join(names)} is not installed ({INSTALL})"
    if required():
        pytest.fail(why)
    pytest.skip(why)


async def _until_listening(port: int, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.close()
        return
    raise RuntimeError(f"{what} did not listen on {port} within {timeout}s")


def _stop(process: subprocess.Popen[bytes] | None, signum: int = signal.SIGTERM) -> None:
    if process is not None and process.poll() is None:
        process.send_signal(signum)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class SentinelSet:
    """A primary, one replica (asynchronous replication) and three sentinels (quorum 2) that
    declare the primary down after ``down_after_ms`` and promote the replica."""

    workdir: Path
    down_after_ms: int = 1000
    primary_port: int = field(default_factory=free_port)
    replica_port: int = field(default_factory=free_port)
    sentinel_ports: list[int] = field(default_factory=lambda: [free_port() for _ in range(3)])
    _nodes: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)
    _sentinels: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
        return f"redis+sentinel://{hosts}/{SERVICE}/0"

    async def start(self) -> None:
        server = binary("redis-server", "valkey-server")
        sentinel = binary("redis-sentinel", "valkey-sentinel")
        self.workdir.mkdir(parents=True, exist_ok=True)
        await self._start_node(server, self.primary_port)
        await self._start_node(server, self.replica_port, replica_of=self.primary_port)
        for port in self.sentinel_ports:
            conf = self.workdir / f"sentinel-{port}.conf"
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {self.workdir}\n"
                f"sentinel monitor {SERVICE} 127.0.0.1 {self.primary_port} 2\n"
                f"sentinel down-after-milliseconds {SERVICE} {self.down_after_ms}\n"
                f"sentinel failover-timeout {SERVICE} 10000\n"
                f"sentinel parallel-syncs {SERVICE} 1\n"
            )
            with (self.workdir / f"sentinel-{port}.log").open("ab") as log:
                self._sentinels.append(
                    subprocess.Popen([sentinel, str(conf)], stdout=log, stderr=log)
                )
            await _until_listening(port, "redis-sentinel")
        await self.until_replicated()
        await self.until_sentinels_agree(self.primary_port)

    async def _start_node(self, server: str, port: int, *, replica_of: int | None = None) -> None:
        argv = [server, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
        argv += ["--appendonly", "no", "--dir", str(self.workdir)]
        argv += ["--dbfilename", f"dump-{port}.rdb"]
        if replica_of is not None:
            argv += ["--replicaof", "127.0.0.1", str(replica_of)]
        with (self.workdir / f"redis-{port}.log").open("ab") as log:
            self._nodes[port] = subprocess.Popen(argv, stdout=log, stderr=log)
        await _until_listening(port, "redis-server")

    async def until_replicated(self, timeout: float = 20.0) -> None:
        """Until the replica's link to the primary is up and it has caught up."""
        replica = Redis(port=self.replica_port)
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                info = await replica.info("replication")
                if info.get("master_link_status") == "up":
                    return
                await asyncio.sleep(0.1)
            raise RuntimeError("the replica did not sync with the primary")
        finally:
            await replica.aclose()

    async def primary(self) -> int:
        """The port the sentinels name as the primary (that of a majority of them)."""
        ports: list[int] = []
        for port in self.sentinel_ports:
            client = Redis(port=port)
            try:
                address: Any = await client.sentinel_get_master_addr_by_name(SERVICE)
                if address:
                    ports.append(int(address[1]))
            except OSError:
                pass
            finally:
                await client.aclose()
        return max(set(ports), key=ports.count) if ports else 0

    async def until_sentinels_agree(self, port: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if await self.primary() == port:
                return
            await asyncio.sleep(0.1)
        raise RuntimeError(f"the sentinels did not name {port} the primary within {timeout}s")

    def kill9_primary(self) -> int:
        """Kill -9 the primary; the replica's port, which Sentinel is to promote."""
        _stop(self._nodes.pop(self.primary_port), signal.SIGKILL)
        return self.replica_port

    async def failover_by_kill9(self) -> float:
        """Kill -9 the primary and wait until the sentinels have promoted the replica; the
        seconds that took."""
        started = time.monotonic()
        promoted = self.kill9_primary()
        await self.until_sentinels_agree(promoted)
        self.primary_port, self.replica_port = promoted, self.primary_port
        return time.monotonic() - started

    def kill(self) -> None:
        self.stop()

    def stop(self) -> None:
        for process in self._sentinels:
            _stop(process)
        for process in self._nodes.values():
            _stop(process)
        self._sentinels.clear()
        self._nodes.clear()


SHIPPED_INI = Path(__file__).parent.parent / "deploy" / "pgbouncer" / "pgbouncer.ini"
SHIPPED = (
    "reserve_pool_size",
    "reserve_pool_timeout",
    "query_wait_timeout",
    "idle_transaction_timeout",
)
"""The settings of the shipped pgbouncer.ini that a test's PgBouncer takes as they are (its pool
size is the test's)."""


def shipped_settings() -> dict[str, str]:
    ini = configparser.ConfigParser(inline_comment_prefixes=(";",))
    ini.read_string(SHIPPED_INI.read_text())
    return {key: ini["pgbouncer"][key] for key in SHIPPED}


@dataclass
class PgBouncer:
    """PgBouncer in transaction pooling mode in front of the Postgres of ``database_url``
    (through a proxy of the test's own when that Postgres listens on a Unix socket only, as the
    embedded one does: PgBouncer runs as ``nobody`` when the tests run as root)."""

    database_url: str
    pool_size: int = 20
    port: int = field(default_factory=free_port)
    _dir: Path | None = None
    _process: subprocess.Popen[bytes] | None = None
    _proxy: TcpProxy | None = None

    @property
    def url(self) -> str:
        """``database_url`` through PgBouncer."""
        parsed = make_url(self.database_url)
        return parsed.set(host="127.0.0.1", port=self.port, query={}).render_as_string(
            hide_password=False
        )

    @property
    def log(self) -> Path:
        assert self._dir is not None
        return self._dir / "pgbouncer.log"

    async def start(self) -> None:
        executable = binary("pgbouncer")
        parsed = make_url(self.database_url)
        host, port = parsed.host or "127.0.0.1", parsed.port or 5432
        if self._proxy is None and isinstance(parsed.query.get("host"), str):
            self._proxy = proxy_for(self.database_url, 5432)
            await self._proxy.start()
        if self._proxy is not None:
            host, port = "127.0.0.1", self._proxy.port
        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix="relai-pgbouncer-"))
            self._dir.chmod(0o755)
        user = parsed.username or "postgres"
        password = f" password={parsed.password}" if parsed.password else ""
        (self._dir / "users.txt").write_text(f'"{user}" ""\n')
        ini = self._dir / "pgbouncer.ini"
        ini.write_text(
            "[databases]\n"
            f"* = host={host} port={port} user={user}{password}\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {self.port}\nunix_socket_dir =\n"
            f"auth_type = trust\nauth_file = {self._dir / 'users.txt'}\n"
            "pool_mode = transaction\n"
            f"default_pool_size = {self.pool_size}\nmax_client_conn = 1000\n"
            "max_db_connections = 0\nserver_login_retry = 1\n"
            # The console (psql -p <port> pgbouncer): SHOW POOLS, SHOW CLIENTS, SHOW SERVERS.
            f"admin_users = {user}\nstats_users = {user}\n"
            + "".join(f"{key} = {value}\n" for key, value in shipped_settings().items())
        )
        for path in (ini, self._dir / "users.txt"):
            path.chmod(0o644)
        argv = [executable, str(ini)]
        if os.geteuid() == 0:
            argv[1:1] = ["-u", "nobody"]
        with self.log.open("ab") as log:
            self._process = subprocess.Popen(argv, stdout=log, stderr=log, process_group=0)
        await _until_listening(self.port, "pgbouncer")

    def kill9(self) -> None:
        _stop(self._process, signal.SIGKILL)

    async def restart(self, down_s: float) -> None:
        """Kill -9, then start again after ``down_s``: every client connection drops."""
        self.kill9()
        await asyncio.sleep(down_s)
        await self.start()

    async def stop(self) -> None:
        _stop(self._process)
        if self._proxy is not None:
            await self._proxy.cut()
            self._proxy = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
