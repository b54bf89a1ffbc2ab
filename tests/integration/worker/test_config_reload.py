"""Hot reload in a running worker: a newly activated ``worker`` config changes the params of the
jobs that start after it, while jobs keep flowing and none is dropped; a version that fails to
load is logged (without its secrets) and the last good one is kept."""

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import asyncpg
import pytest
from cryptography.fernet import Fernet, MultiFernet
from redis.asyncio import Redis

from libs import config
from libs.config import ConfigWatcher
from libs.config.postgres import PostgresConfigStore
from libs.contracts import TaskMessage
from libs.logs import configure_logging
from services.worker.config import handler_params
from services.worker.handlers import build_registry
from services.worker.providers import ProviderHttp
from tests.fakes.provider import fake_provider
from tests.integration.config.conftest import clear_config_tables
from tests.integration.worker.helpers import add_tasks, finals, running, task, wait_finals
from tests.support import ServerUrls

SECRET = "sk-hot-5b9c0e"
FERNET = MultiFernet([Fernet(Fernet.generate_key())])


def worker_config(prefix: str, base_url: str = "!ENV ${HOT_BASE:-http://127.0.0.1:9}") -> str:
    return (
        "integrations:\n"
        "  hot:\n"
        "    base_url: https://hot.example/v1\n"
        f"    ~api_key: {SECRET}\n"
        "handlers:\n"
        "  echo.text:\n"
        f"    prefix: '{prefix}'\n"
        f"    base_url: {base_url}\n"
    )


@pytest.fixture
async def store(servers: ServerUrls, db_pool: "asyncpg.Pool[Any]") -> PostgresConfigStore:
    await clear_config_tables(db_pool)
    return PostgresConfigStore(db_pool, database_url=servers.database_url)


async def upload(
    store: PostgresConfigStore, text: str, *, environ: dict[str, str] | None = None
) -> str:
    stored = await config.upload(
        store, "worker", text, fernet=FERNET, environ=environ or {}, author="test"
    )
    return stored.version


async def test_activation_switches_params_without_dropping_jobs(
    store: PostgresConfigStore, redis_client: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    configure_logging(service="worker", level="INFO")
    logging.getLogger().addHandler(caplog.handler)
    v1 = await upload(store, worker_config("v1:"))
    v2 = await upload(store, worker_config("v2:", "http://127.0.0.1:8"))
    # v3 loads where it is uploaded, not in the worker (HOT_REQUIRED is unset there).
    v3 = await upload(
        store, worker_config("v3:", "!ENV ${HOT_REQUIRED}"), environ={"HOT_REQUIRED": "x"}
    )
    await store.activate("worker", v1, author="test")

    # A long poll: the switch must come from the notification.
    watcher = ConfigWatcher(store, FERNET, {"worker": "active"}, environ={}, poll_s=30)
    await watcher.load()
    watching = asyncio.create_task(watcher.run())
    sent: list[TaskMessage] = []
    try:
        async with running(redis_client, handler_params=handler_params(watcher)):
            await asyncio.sleep(0.3)  # the listener is up

            async def feed(count: int) -> None:
                for _ in range(count):
                    sent.append(task(prompt=f"job{len(sent)}"))
                    await add_tasks(redis_client, [sent[-1]])
                    await asyncio.sleep(0.005)

            await feed(50)
            activated = time.monotonic()
            await store.activate("worker", v2, author="test")
            feeding = asyncio.create_task(feed(150))
            while watcher.get("worker").version != v2:  # type: ignore[union-attr]
                assert time.monotonic() - activated < 5, "the worker never switched"
                await asyncio.sleep(0.01)
            switched_after = time.monotonic() - activated
            await feeding
            await wait_finals(redis_client, len(sent), timeout=30)

            await store.activate("worker", v3, author="test")
            await asyncio.sleep(0.5)
            await feed(20)
            results = await wait_finals(redis_client, len(sent), timeout=30)
    finally:
        watching.cancel()
        await asyncio.gather(watching, return_exceptions=True)

    by_request = {r.request_id: r for r in finals(results)}
    assert len(by_request) == len(sent) == 220  # none dropped, none twice
    assert all(r.kind == "succeeded" for r in by_request.values())
    prefixes = [by_request[t.request_id].results[0].split(":")[0] for t in sent]  # type: ignore[index]
    assert prefixes[:50] == ["v1"] * 50
    assert prefixes[-20:] == ["v2"] * 20  # v3 failed to load: the last good config stays
    switch = prefixes.index("v2")
    assert prefixes[switch:] == ["v2"] * (len(sent) - switch)  # one clean switch, no flapping
    assert switched_after < 2.0

    logged = caplog.text
    assert "config.rejected" in logged
    assert "HOT_REQUIRED is not set" in logged
    assert SECRET not in logged


async def test_pinned_versions_and_a_failed_first_load(store: PostgresConfigStore) -> None:
    v1 = await upload(store, worker_config("v1:"))
    v2 = await upload(store, worker_config("v2:"))
    await store.activate("worker", v2, author="test")
    pinned = ConfigWatcher(store, FERNET, {"worker": v1}, environ={}, poll_s=30)
    await pinned.load()
    assert await pinned.refresh() is False
    assert pinned.get("worker").version == v1  # type: ignore[union-attr]
    hot = pinned.get("worker").data.integrations["hot"]  # type: ignore[union-attr]
    assert hot.api_key.get_secret_value() == SECRET

    nothing = ConfigWatcher(store, FERNET, {"other": "active"}, environ={}, poll_s=30)
    await nothing.load()
    assert nothing.get("other") is None

    wrong_key = MultiFernet([Fernet(Fernet.generate_key())])
    with pytest.raises(config.ConfigError, match="Fernet key is wrong"):
        await ConfigWatcher(store, wrong_key, {"worker": "active"}, environ={}).load()
    with pytest.raises(config.UnknownConfigError, match="no version '9'"):
        await ConfigWatcher(store, FERNET, {"worker": "9"}, environ={}).load()


class Unannounced(PostgresConfigStore):
    """A store that cannot push changes (like MongoDB without a replica set)."""

    async def watch(self, on_change: Callable[[str], None]) -> None:
        return None


async def test_without_notifications_the_poll_picks_up_activations(
    servers: ServerUrls, db_pool: "asyncpg.Pool[Any]"
) -> None:
    await clear_config_tables(db_pool)
    store = Unannounced(db_pool, database_url=servers.database_url)
    v1 = await upload(store, worker_config("v1:"))
    v2 = await upload(store, worker_config("v2:"))
    await store.activate("worker", v1, author="test")
    watcher = ConfigWatcher(store, FERNET, {"worker": "active"}, environ={}, poll_s=0.2)
    await watcher.load()
    watching = asyncio.create_task(watcher.run())
    try:
        await store.activate("worker", v2, author="test")
        deadline = time.monotonic() + 5
        while watcher.get("worker").version != v2:  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "the poll never picked up the activation"
            await asyncio.sleep(0.05)
    finally:
        watching.cancel()
        await asyncio.gather(watching, return_exceptions=True)


async def test_a_running_worker_switches_its_provider_on_activation_without_dropping_jobs(
    store: PostgresConfigStore, redis_client: Redis
) -> None:
    def provider_config(base_url: str) -> str:
        return (
            "integrations:\n"
            "  fake:\n"
            f"    base_url: {base_url}\n"
            f"    ~api_key: {SECRET}\n"
            "handlers:\n"
            "  openai.chat:\n"
            "    integration: fake\n"
            "    model: fake-model\n"
        )

    async with fake_provider() as first, fake_provider() as second:
        v1 = await upload(store, provider_config(first.url))
        v2 = await upload(store, provider_config(second.url))
        await store.activate("worker", v1, author="test")
        watcher = ConfigWatcher(store, FERNET, {"worker": "active"}, environ={}, poll_s=30)
        await watcher.load()
        watching = asyncio.create_task(watcher.run())
        http = ProviderHttp()
        sent: list[TaskMessage] = []

        async def feed(count: int) -> None:
            for _ in range(count):
                sent.append(task("openai.chat", f"job {len(sent)}"))
                await add_tasks(redis_client, [sent[-1]])
                await asyncio.sleep(0.005)

        try:
            async with running(
                redis_client,
                registry=build_registry(http=http),
                handler_params=handler_params(watcher),
            ):
                await asyncio.sleep(0.3)  # the listener is up
                await feed(40)
                await store.activate("worker", v2, author="test")
                await feed(40)
                while watcher.get("worker").version != v2:  # type: ignore[union-attr]
                    await asyncio.sleep(0.01)
                await feed(20)
                results = await wait_finals(redis_client, len(sent), timeout=30)
        finally:
            watching.cancel()
            await asyncio.gather(watching, return_exceptions=True)
            await http.aclose()

    by_request = {r.request_id: r for r in finals(results)}
    assert len(by_request) == len(sent) == 100  # none dropped, none twice
    assert all(r.kind == "succeeded" for r in by_request.values())
    assert len(first.calls) + len(second.calls) == 100
    assert len(first.calls) >= 40
    # Every job sent after the worker switched went to the new URL.
    late = {f"job {n}" for n in range(80, 100)}
    assert late <= {c.body["messages"][-1]["content"] for c in second.calls}
    assert {c.headers["authorization"] for c in first.calls + second.calls} == {f"Bearer {SECRET}"}
