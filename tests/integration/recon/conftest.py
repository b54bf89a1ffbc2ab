"""Recon served in the test's event loop, with its lifespan run as uvicorn runs it."""

import socket
from collections.abc import AsyncIterator, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from libs.contracts import EPOCH_KEY
from services.recon.app import create_app
from services.recon.settings import ReconSettings
from tests.support import ServerUrls

Scope = MutableMapping[str, Any]


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
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def settings_for(servers: ServerUrls, **overrides: Any) -> ReconSettings:
    values: dict[str, Any] = {
        "database_url": servers.database_url,
        "redis_url": servers.redis_url,
        "recon_health_timeout": 1.0,
        **overrides,
    }
    return ReconSettings(**values)
