"""The real processes, started as a user starts them: ``relai-api --workers 2``, two
``relai-worker`` processes and ``relai-dispatcher``, on the test servers."""

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

from libs.accounts import NewUser
from services.cli.launcher import ChildSpec, Supervisor, console_script, wait_until_healthy
from tests.fakes.provider import FakeProvider, fake_provider
from tests.integration.api.conftest import free_port
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
def stack_env(servers: ServerUrls) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": servers.database_url,
        "REDIS_URL": servers.redis_url,
        "RELAI_LOG_LEVEL": "WARNING",
        "RELAI_WORKER_VISIBILITY_TIMEOUT_S": "2",
        "RELAI_WORKER_RECLAIM_INTERVAL_S": "0.5",
        "RELAI_WORKER_METRICS_PORT": "0",  # several workers on one host
    }


@pytest.fixture
async def stack(stack_env: dict[str, str], db_pool: "asyncpg.Pool[Any]") -> AsyncIterator[Stack]:
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
    for n in range(1, WORKERS + 1):
        worker = [console_script("relai-worker")]
        specs[f"relai-worker-{n}"] = ChildSpec(f"relai-worker-{n}", worker, bootstrap("worker"))
    specs["relai-dispatcher"] = ChildSpec(
        "relai-dispatcher",
        [console_script("relai-dispatcher")],
        {
            "RELAI_DISPATCHER_PORT": str(dispatcher_port),
            "RELAI_DISPATCHER_METRICS_PORT": str(dispatcher_metrics_port),
        },
    )
    for spec in specs.values():
        supervisor.start(spec)
    url = f"http://127.0.0.1:{port}"
    dispatcher_url = f"http://127.0.0.1:{dispatcher_port}"
    try:
        for health in (f"{url}/health", f"{dispatcher_url}/health"):
            await asyncio.to_thread(
                wait_until_healthy, health, timeout=90, exited=supervisor.exited
            )
        yield Stack(
            url=url,
            metrics_url=f"http://127.0.0.1:{metrics_port}",
            dispatcher_url=dispatcher_url,
            dispatcher_metrics_url=f"http://127.0.0.1:{dispatcher_metrics_port}",
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
