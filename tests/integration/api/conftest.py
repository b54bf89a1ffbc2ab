"""An API server (real uvicorn, in this test's event loop) on the test servers."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import openai
import pytest
import uvicorn
from fastapi import FastAPI

from bench.stack import free_port as free_port  # never the same port twice in a process
from libs.accounts import NewUser
from services.api.app import create_app
from services.api.protocol import DeadlineProtocol
from services.api.settings import ApiSettings
from tests.support import ServerUrls, create_user, load_demo_catalog


@dataclass
class Api:
    url: str
    client: httpx.AsyncClient

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://")

    def openai(self, key: str) -> openai.AsyncOpenAI:
        """The official ``openai`` SDK on this API's ``/v1``, retrying nothing (a test sees
        each answer)."""
        return openai.AsyncOpenAI(base_url=f"{self.url}/v1", api_key=key, max_retries=0)


@asynccontextmanager
async def serving(settings: ApiSettings, app: FastAPI | None = None) -> AsyncIterator[Api]:
    """The API app (``app``, else one made from ``settings``) served by a real uvicorn in this
    test's event loop, through the API's own HTTP protocol, with a client."""
    port = free_port()
    # A connection still open at the end gets 5 s, then is cancelled: the app's shutdown always
    # runs, so no background loop of this app outlives the test (and reads the next one's data).
    config = uvicorn.Config(
        app or create_app(settings),
        host="127.0.0.1",
        port=port,
        http=DeadlineProtocol,
        log_config=None,
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            yield Api(url=url, client=client)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)


def settings_for(servers: ServerUrls, **overrides: Any) -> ApiSettings:
    return ApiSettings(
        database_url=servers.database_url,
        redis_url=servers.redis_url,
        **{"relay_poll_s": 0.2, **overrides},
    )


@pytest.fixture
async def api(servers: ServerUrls, db_pool: "asyncpg.Pool[Any]") -> AsyncIterator[Api]:
    await load_demo_catalog(db_pool)
    async with serving(settings_for(servers)) as running:
        yield running


@pytest.fixture
async def alice(db_pool: "asyncpg.Pool[Any]") -> NewUser:
    return await create_user(db_pool, name="alice", credits=100)


@pytest.fixture
async def bob(db_pool: "asyncpg.Pool[Any]") -> NewUser:
    return await create_user(db_pool, name="bob", credits=100)


def auth(user: NewUser) -> dict[str, str]:
    return {"Authorization": f"Bearer {user.api_key}"}
