"""The real processes, started as a user starts them: ``relai-api --workers 2``, two
``relai-worker`` processes and ``relai-dispatcher`` (and ``relai-recon``, in a module that asks
for it with ``stack_recon``), on the test servers."""

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from bench.stack import free_port
from libs.accounts import NewUser
from services.cli.launcher import ChildSpec, Supervisor, console_script, wait_until_healthy
from tests.fakes.provider import FakeProvider, fake_provider
from tests.support import ServerUrls, create_user, load_demo_catalog

ROOT = Path(__file__).resolve().parents[2]

WORKERS = 2


@dataclass
class Stack:
    url: str
    metrics_url: str
    """The API's operator port (its metrics); the public ``url`` serves none."""
    dispatcher_url: str
    """The webhook dispatcher's ``/health``."""
    dispatcher_metrics_url: str
    metrics_targets: dict[str, list[str]]
    """Every metrics port started, as Prometheus would scrape it: ``host:port`` by job name
    (``relai-api``, ``relai-worker``, ``relai-dispatcher``, ``relai-recon``)."""
    recon_url: str | None
    """Recon's ``/health`` and API, when ``stack_recon`` asked for it."""
    supervisor: Supervisor
    user: NewUser
    credits: int
    specs: dict[str, ChildSpec]

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://")

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.user.api_key}"}

    def kill(self, name: str) -> None:
        os.killpg(self.supervisor.pids[name], signal.SIGKILL)

    async def restart(self, name: str, health_url: str) -> None:
        """Start ``name`` again (after ``kill``), as it was, and wait until it is healthy."""
        self.supervisor.start(self.specs[name])
        await asyncio.to_thread(wait_until_healthy, health_url, timeout=60, exited=lambda: None)


def bootstrap(component: str) -> dict[str, str]:
    return {"RELAI_CONFIG_FILE": str(ROOT / "config" / f"{component}.bootstrap.yaml")}


@pytest.fixture
async def fake() -> AsyncIterator[FakeProvider]:
    """A fake AI provider on this host (see ``tests.e2e.providers``)."""
    async with fake_provider() as provider:
        yield provider


@pytest.fixture
def stack_recon() -> bool:
    """Whether the stack runs ``relai-recon`` too (override in a module)."""
    return False


@pytest.fixture
def stack_env(servers: ServerUrls, tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "RELAI_BLOB_URL": str(tmp_path / "blobs"),
        "DATABASE_URL": servers.database_url,
        "REDIS_URL": servers.redis_url,
        "RELAI_LOG_LEVEL": "WARNING",
        "RELAI_WORKER_VISIBILITY_TIMEOUT_S": "2",
        "RELAI_WORKER_RECLAIM_INTERVAL_S": "0.5",
        "RELAI_WORKER_METRICS_PORT": "0",  # several workers on one host: each is given its own
    }


@pytest.fixture
async def stack(
    stack_env: dict[str, str], stack_recon: bool, db_pool: "asyncpg.Pool[Any]"
) -> AsyncIterator[Stack]:
    await load_demo_catalog(db_pool)
    credits = 1_000_000
    user = await create_user(db_pool, name="e2e", credits=credits)
    port, metrics_port = free_port(), free_port()
    dispatcher_port, dispatcher_metrics_port = free_port(), free_port()
    supervisor = Supervisor(
        env={**stack_env, "RELAI_API_METRICS_PORT": str(metrics_port)}, stop_timeout=15
    )
    # As `relai run` and compose start them: each following its shipped bootstrap config (the
    # dispatcher has none).
    api = [console_script("relai-api"), "--port", str(port), "--workers", "2"]
    specs = {"relai-api": ChildSpec("relai-api", api, bootstrap("api"))}
    targets: dict[str, list[str]] = {"relai-api": [f"127.0.0.1:{metrics_port}"]}
    for n in range(1, WORKERS + 1):
        worker = [console_script("relai-worker")]
        worker_metrics = free_port()
        specs[f"relai-worker-{n}"] = ChildSpec(
            f"relai-worker-{n}",
            worker,
            {**bootstrap("worker"), "RELAI_WORKER_METRICS_PORT": str(worker_metrics)},
        )
        targets.setdefault("relai-worker", []).append(f"127.0.0.1:{worker_metrics}")
    specs["relai-dispatcher"] = ChildSpec(
        "relai-dispatcher",
        [console_script("relai-dispatcher")],
        {
            "RELAI_DISPATCHER_PORT": str(dispatcher_port),
            "RELAI_DISPATCHER_METRICS_PORT": str(dispatcher_metrics_port),
        },
    )
    targets["relai-dispatcher"] = [f"127.0.0.1:{dispatcher_metrics_port}"]
    recon_url = None
    if stack_recon:
        recon_port, recon_metrics_port = free_port(), free_port()
        specs["relai-recon"] = ChildSpec(
            "relai-recon",
            [console_script("relai-recon")],
            {
                **bootstrap("recon"),
                "RELAI_RECON_PORT": str(recon_port),
                "RELAI_RECON_METRICS_PORT": str(recon_metrics_port),
            },
        )
        recon_url = f"http://127.0.0.1:{recon_port}"
        targets["relai-recon"] = [f"127.0.0.1:{recon_metrics_port}"]
    for spec in specs.values():
        supervisor.start(spec)
    url = f"http://127.0.0.1:{port}"
    dispatcher_url = f"http://127.0.0.1:{dispatcher_port}"
    healths = [f"{url}/health", f"{dispatcher_url}/health"]
    if recon_url is not None:
        healths.append(f"{recon_url}/health")
    try:
        for health in healths:
            await asyncio.to_thread(
                wait_until_healthy, health, timeout=90, exited=supervisor.exited
            )
        yield Stack(
            url=url,
            metrics_url=f"http://127.0.0.1:{metrics_port}",
            dispatcher_url=dispatcher_url,
            dispatcher_metrics_url=f"http://127.0.0.1:{dispatcher_metrics_port}",
            metrics_targets=targets,
            recon_url=recon_url,
            supervisor=supervisor,
            user=user,
            credits=credits,
            specs=specs,
        )
    finally:
        await asyncio.to_thread(supervisor.stop)


@pytest.fixture
async def client(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.url, headers=stack.headers, timeout=10) as c:
        yield c
