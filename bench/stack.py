"""The system under test: its own database and Redis db on the given (or embedded) servers, and
the real processes started as a user starts them."""

from __future__ import annotations

import asyncio
import os
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil
from sqlalchemy.engine import make_url

from libs import accounts
from libs.catalog import CatalogSpec, apply_catalog
from libs.db import create_pool, recreate_database
from libs.embedded import start_embedded
from libs.streams import create_redis
from services.cli.launcher import ChildSpec, Supervisor, console_script, wait_until_healthy
from services.cli.migrate import upgrade_to_head

ROOT = Path(__file__).resolve().parent.parent

BENCH_CATALOG = CatalogSpec.model_validate(
    {
        "handlers": [{"id": "echo.text"}, {"id": "echo.delay"}],
        "offers": [
            {
                "service": "bench",
                "action": "echo",
                "price": 1,
                "prompt_template": "{text}",
                "handler": "echo.text",
            },
            {
                "service": "bench",
                "action": "sleep",
                "price": 1,
                "prompt_template": "{text}",
                "handler": "echo.delay",
                "params": {"delay_ms": 1000},
                "tiers": {"flex": 50, "priority": 200},
            },
            {
                "service": "bench",
                "action": "work",
                "price": 1,
                "prompt_template": "{text}",
                "handler": "echo.delay",
                "params": {"delay_ms": 50},
                "tiers": {"flex": 50, "priority": 200},
            },
        ],
    }
)


@dataclass
class Running:
    url: str
    database_url: str
    supervisor: Supervisor
    metrics_urls: list[str]
    """The operator ports of the API and of each worker."""

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time used so far by each part of the system (processes and their children)."""
        used: dict[str, float] = {}
        for name, pid in self.supervisor.pids.items():
            group = name.rstrip("-0123456789")
            used[group] = used.get(group, 0.0) + _tree_cpu(psutil.Process(pid))
        for proc in psutil.process_iter(["name"]):
            label = {"postgres": "postgres", "redis-server": "redis", "valkey-server": "redis"}.get(
                proc.info["name"] or ""
            )
            if label:
                try:
                    times = proc.cpu_times()
                except psutil.NoSuchProcess:
                    continue
                used[label] = used.get(label, 0.0) + times.user + times.system
        me = psutil.Process().cpu_times()
        used["load generator"] = me.user + me.system
        return used

    def worker_rss_mb(self) -> float:
        """Resident memory of the largest worker process."""
        sizes = [
            psutil.Process(pid).memory_info().rss
            for name, pid in self.supervisor.pids.items()
            if name.startswith("relai-worker")
        ]
        return max(sizes) / 2**20

    async def new_user(self, name: str) -> str:
        pool = await create_pool(self.database_url, min_size=1, max_size=1)
        try:
            async with pool.acquire() as conn, conn.transaction():
                user = await accounts.create_user(conn, name=name, credits=10**12)
        finally:
            await pool.close()
        return user.api_key


def _tree_cpu(process: psutil.Process) -> float:
    total = 0.0
    for proc in [process, *process.children(recursive=True)]:
        try:
            times = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


async def _prepare(database_url: str, redis_url: str) -> None:
    await recreate_database(database_url)
    await asyncio.to_thread(
        upgrade_to_head, database_url=database_url, alembic_config=ROOT / "alembic.ini"
    )
    pool = await create_pool(database_url, min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn:
            await apply_catalog(conn, BENCH_CATALOG)
    finally:
        await pool.close()
    redis = create_redis(redis_url)
    await redis.flushdb()
    await redis.aclose()


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A port free now and never handed out before by this process: nothing is bound to a port
    until its server starts, so two calls in a row could otherwise get the same one."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


@contextmanager
def bench_servers(database: str, redis_db: str, *, prefix: str) -> Iterator[tuple[str, str]]:
    """The URLs of database ``database`` and Redis db ``redis_db`` on the servers of
    DATABASE_URL/REDIS_URL, or on embedded servers (in a temporary directory named from
    ``prefix``, stopped at the end) when those are unset."""
    embedded = None
    database_url, redis_url = os.environ.get("DATABASE_URL"), os.environ.get("REDIS_URL")
    if not database_url or not redis_url:
        embedded = start_embedded(Path(tempfile.mkdtemp(prefix=prefix)))
        database_url, redis_url = embedded.database_url, embedded.redis_url
    try:
        yield (
            make_url(database_url).set(database=database).render_as_string(False),
            str(make_url(redis_url).set(database=redis_db).render_as_string(False)),
        )
    finally:
        if embedded is not None:
            embedded.stop()


@contextmanager
def prepared_servers() -> Iterator[tuple[str, str]]:
    """Database ``relai_bench`` (migrated, with the bench catalog) and Redis db 12, both empty
    (``RELAI_BENCH_DATABASE`` and ``RELAI_BENCH_REDIS_DB`` name others), on the servers of
    DATABASE_URL/REDIS_URL, or on embedded servers when those are unset."""
    database = os.environ.get("RELAI_BENCH_DATABASE", "relai_bench")
    redis_db = os.environ.get("RELAI_BENCH_REDIS_DB", "12")
    with bench_servers(database, redis_db, prefix="relai-bench-") as (database_url, redis_url):
        asyncio.run(_prepare(database_url, redis_url))
        yield database_url, redis_url


@contextmanager
def running_stack(
    *, api_workers: int, workers: int, dispatchers: int = 0, env: dict[str, str] | None = None
) -> Iterator[Running]:
    """The real processes, started as a user starts them, on ``prepared_servers()``: the API,
    ``workers`` workers and ``dispatchers`` webhook dispatchers, with ``env`` besides."""
    with prepared_servers() as (database_url, redis_url):
        port = free_port()
        environment = {
            **os.environ,
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "RELAI_LOG_LEVEL": "WARNING",
            **(env or {}),
        }
        supervisor = Supervisor(env=environment, stop_timeout=15)
        metrics_ports = [free_port() for _ in range(1 + workers)]
        try:
            api = [console_script("relai-api"), "--port", str(port), "--workers", str(api_workers)]
            api_ports = {"RELAI_API_METRICS_PORT": str(metrics_ports[0])}
            supervisor.start(ChildSpec("relai-api", api, api_ports))
            for n in range(workers):
                worker_ports = {"RELAI_WORKER_METRICS_PORT": str(metrics_ports[1 + n])}
                worker = [console_script("relai-worker")]
                supervisor.start(ChildSpec(f"relai-worker-{n}", worker, worker_ports))
            for n in range(dispatchers):
                ports = {
                    "RELAI_DISPATCHER_PORT": str(free_port()),
                    "RELAI_DISPATCHER_METRICS_PORT": "0",
                }
                dispatcher = [console_script("relai-dispatcher")]
                supervisor.start(ChildSpec(f"relai-dispatcher-{n}", dispatcher, ports))
            url = f"http://127.0.0.1:{port}"
            wait_until_healthy(f"{url}/health", timeout=60, exited=supervisor.exited)
            yield Running(
                url=url,
                database_url=database_url,
                supervisor=supervisor,
                metrics_urls=[f"http://127.0.0.1:{p}" for p in metrics_ports],
            )
        finally:
            supervisor.stop()
