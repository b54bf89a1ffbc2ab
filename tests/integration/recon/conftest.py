"""Recon served in the test's event loop, with its lifespan run as uvicorn runs it; the alert
loop with a local webhook receiver and a clock of the test's."""

from collections.abc import AsyncIterator, MutableMapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from aiohttp import web
from redis.asyncio import Redis

from bench.stack import free_port
from libs.contracts import EPOCH_KEY
from services.recon.alerts.leader import Leadership
from services.recon.alerts.loop import AlertLoop
from services.recon.alerts.notifier import WebhookNotifier
from services.recon.alerts.notifier import webhook_client as alert_client
from services.recon.alerts.policy import AlertPolicy
from services.recon.alerts.rules import Thresholds
from services.recon.app import create_app
from services.recon.settings import ReconSettings
from tests.support import ServerUrls

Scope = MutableMapping[str, Any]


@pytest.fixture(autouse=True)
def blob_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Recon's blob store for this test (``RELAI_BLOB_URL``, read by every recon it starts, in
    this process or another): a directory of its own, never the default under the working
    directory."""
    path = tmp_path / "recon-blobs"
    monkeypatch.setenv("RELAI_BLOB_URL", str(path))
    return path


@pytest.fixture(autouse=True)
async def steady_redis(redis_client: Redis) -> None:
    """Redis as recon leaves it after a sweep; the tests of data loss delete the key."""
    await redis_client.set(EPOCH_KEY, "steady")


@asynccontextmanager
async def recon(settings: ReconSettings) -> AsyncIterator[httpx.AsyncClient]:
    """A client for the app, with its lifespan run and its state in every request's scope,
    as uvicorn does it."""
    app = create_app(settings)
    async with app.router.lifespan_context(app) as state:

        async def with_state(scope: Scope, receive: Any, send: Any) -> None:
            await app({**scope, "state": dict(state or {})}, receive, send)

        transport = httpx.ASGITransport(app=with_state)
        async with httpx.AsyncClient(transport=transport, base_url="http://recon") as client:
            yield client


def closed_port() -> int:
    """A port nothing listens on (and no other helper of this process hands out)."""
    return free_port()


def settings_for(servers: ServerUrls, **overrides: Any) -> ReconSettings:
    values: dict[str, Any] = {
        "database_url": servers.database_url,
        "redis_url": servers.redis_url,
        "recon_health_timeout": 1.0,
        **overrides,
    }
    return ReconSettings(**values)


@dataclass
class Receiver:
    url: str
    received: list[dict[str, Any]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    status: int = 204


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    box = Receiver(url="")

    async def hook(request: web.Request) -> web.Response:
        box.received.append(await request.json())
        box.paths.append(request.path)
        return web.Response(status=box.status)

    app = web.Application()
    app.router.add_post("/{name}", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    box.url = f"http://127.0.0.1:{port}/hook"
    yield box
    await runner.cleanup()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def webhook_client() -> AsyncIterator[httpx.AsyncClient]:
    """Recon's own client, the receiver's loopback address allowed as ``RELAI_SSRF_ALLOW``
    would."""
    async with alert_client(["127.0.0.1"]) as client:
        yield client


@pytest.fixture
async def leaders(servers: ServerUrls) -> AsyncIterator[list[Leadership]]:
    """Two replicas' leadership, released (their sessions ended) after the test."""
    both = [Leadership(servers.database_url), Leadership(servers.database_url)]
    yield both
    for leadership in both:
        await leadership.release()


THRESHOLDS = Thresholds(outbox_age_s=30, stuck_age_s=900)


def alert_loop(
    leadership: Leadership,
    pool: "asyncpg.Pool[Any]",
    redis: Redis,
    receiver: Receiver,
    client: httpx.AsyncClient,
    clock: Clock,
    thresholds: Thresholds = THRESHOLDS,
) -> AlertLoop:
    """A replica's alert loop, posting to ``receiver``, its cool-down and look-back on
    ``clock``."""
    return AlertLoop(
        pool,
        redis,
        leadership=leadership,
        notifier=WebhookNotifier(client=client, clock=clock),
        policy=lambda: AlertPolicy(receiver.url, cooldown_s=600, thresholds=thresholds),
        interval_s=60,
        health_timeout=2,
        clock=clock,
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()
