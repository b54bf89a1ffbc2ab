"""Building blocks of the routing tests: the operator's integrations (one per fake provider) in
the central config ``worker``, jobs of a model, and a worker that routes them."""

import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from cryptography.fernet import Fernet, MultiFernet
from redis.asyncio import Redis

from libs import config
from libs.config import ConfigWatcher
from libs.config.postgres import PostgresConfigStore
from libs.contracts import ResultMessage, TaskMessage
from libs.contracts.models import Deployment, Route
from services.worker.config import deployment_params, handler_params
from services.worker.handlers import build_registry
from services.worker.providers import ProviderHttp
from services.worker.runner import Runner
from services.worker.settings import WorkerSettings
from tests.fakes.provider import FakeProvider
from tests.integration.worker.helpers import FAST, add_tasks, finals, running, wait_results
from tests.support import ServerUrls

MODEL = "llama"


async def configure(
    servers: ServerUrls, pool: "asyncpg.Pool[Any]", fakes: Mapping[str, FakeProvider]
) -> ConfigWatcher:
    """The config ``worker`` active with one integration per fake (by name), and a watcher of
    it, loaded."""
    store = PostgresConfigStore(pool, database_url=servers.database_url)
    fernet = MultiFernet([Fernet(Fernet.generate_key())])
    lines = ["integrations:"]
    for name, fake in fakes.items():
        lines += [f"  {name}:", f"    base_url: {fake.url}/v1"]
    text = "\n".join(lines) + "\n"
    await config.upload(store, "worker", text, fernet=fernet, environ={}, author="t", activate=True)
    watcher = ConfigWatcher(store, fernet, {"worker": "active"}, environ={}, poll_s=30)
    await watcher.load()
    return watcher


def route(*deployments: Deployment, **options: Any) -> Route:
    return Route(
        model=MODEL, version="1", provider_model="llama-3", deployments=list(deployments), **options
    )


def job(the_route: Route, prompt: str = "hi", **params: Any) -> TaskMessage:
    return TaskMessage(
        request_id=uuid.uuid4(),
        attempt=1,
        handler="openai.chat",
        prompt=prompt,
        params=params,
        route=the_route,
    )


@asynccontextmanager
async def routing_worker(
    redis: Redis, watcher: ConfigWatcher, *, concurrency: int = 100
) -> AsyncIterator[Runner]:
    """A worker (in this event loop) that routes jobs of models over ``watcher``'s
    integrations."""
    http = ProviderHttp()
    settings = WorkerSettings(**{**FAST.model_dump(), "worker_concurrency": concurrency})
    try:
        async with running(
            redis,
            settings,
            registry=build_registry(http=http),
            handler_params=handler_params(watcher),
            deployment_params=deployment_params(watcher),
        ) as runner:
            yield runner
    finally:
        await http.aclose()


async def run_all(
    redis: Redis, tasks: list[TaskMessage], *, timeout: float = 30
) -> dict[uuid.UUID, ResultMessage]:
    """Submit ``tasks`` to a running worker; their final results by request."""
    await add_tasks(redis, tasks)
    ids = {t.request_id for t in tasks}

    def ended(results: list[ResultMessage]) -> list[ResultMessage]:
        return [r for r in finals(results) if r.request_id in ids]

    results = await wait_results(redis, lambda rs: len(ended(rs)) >= len(ids), timeout=timeout)
    assert len(ended(results)) == len(ids), "a job ended more than once"
    return {r.request_id: r for r in ended(results)}


def served(fake: FakeProvider) -> int:
    return len(fake.calls)
