"""The real ``relai-worker`` with the repository's bootstrap config (config/worker.bootstrap.yaml):
it loads the active ``worker`` config at start, follows activations, and refuses to start when
the config holds secrets its keys cannot open."""

import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import asyncpg
from cryptography.fernet import Fernet, MultiFernet
from redis.asyncio import Redis

from libs import config
from libs.config.postgres import PostgresConfigStore
from tests.integration.config.conftest import clear_config_tables
from tests.integration.worker.helpers import add_tasks, finals, task, wait_finals
from tests.support import ServerUrls

ROOT = Path(__file__).resolve().parents[3]
WORKER = Path(sys.executable).parent / "relai-worker"
SECRET = "sk-proc-81ac2f"


def _env(servers: ServerUrls, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "DATABASE_URL": servers.database_url,
        "REDIS_URL": servers.redis_url,
        "RELAI_CONFIG_FILE": str(ROOT / "config" / "worker.bootstrap.yaml"),
        "RELAI_CONFIG_POLL_S": "0.5",
        "RELAI_WORKER_BLOCK_MS": "200",
        "RELAI_WORKER_METRICS_PORT": "0",
    }
    env.pop("RELAI_CONFIG_KEY", None)
    return {**env, **extra}


async def test_the_worker_process_follows_the_worker_config(
    servers: ServerUrls, db_pool: "asyncpg.Pool[Any]", redis_client: Redis
) -> None:
    await clear_config_tables(db_pool)
    key = Fernet.generate_key().decode()
    fernet = MultiFernet([Fernet(key)])
    store = PostgresConfigStore(db_pool, database_url=servers.database_url)
    for prefix in ("one ", "two "):
        text = (
            f"integrations:\n  hot:\n    base_url: https://hot.example\n    ~api_key: {SECRET}\n"
            f"handlers:\n  echo.text:\n    prefix: '{prefix}'\n"
        )
        await config.upload(store, "worker", text, fernet=fernet, environ={}, author="t")
    await store.activate("worker", "1", author="t")

    process = await asyncio.create_subprocess_exec(
        str(WORKER), env=_env(servers, RELAI_CONFIG_KEY=key), stderr=asyncio.subprocess.PIPE
    )
    try:
        first = task(prompt="a")
        await add_tasks(redis_client, [first])
        await wait_finals(redis_client, 1, timeout=30)
        await store.activate("worker", "2", author="t")
        deadline = time.monotonic() + 10
        sent = [first]
        while True:
            sent.append(task(prompt="b"))
            await add_tasks(redis_client, [sent[-1]])
            results = await wait_finals(redis_client, len(sent), timeout=10)
            if finals(results)[-1].results == ["two b"]:
                break
            assert time.monotonic() < deadline, "the worker never switched"
            await asyncio.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(process.wait(), 15)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.stderr is not None
    stderr = (await process.stderr.read()).decode()

    assert code == 0
    by_request = {r.request_id: r for r in finals(results)}
    assert by_request[first.request_id].results == ["one a"]
    assert len(by_request) == len(sent)
    loaded = [json.loads(line) for line in stderr.splitlines() if "config.loaded" in line]
    assert [(e["config_id"], e["version"]) for e in loaded] == [("worker", "1"), ("worker", "2")]
    assert SECRET not in stderr


async def test_without_a_key_the_worker_refuses_a_config_holding_secrets(
    servers: ServerUrls, db_pool: "asyncpg.Pool[Any]"
) -> None:
    """The shipped bootstrap reads ``RELAI_CONFIG_KEY`` if set: without it, a config with no
    secrets loads (the e2e stack runs that way), one with secrets stops the worker by name."""
    await clear_config_tables(db_pool)
    fernet = MultiFernet([Fernet(Fernet.generate_key())])
    store = PostgresConfigStore(db_pool, database_url=servers.database_url)
    text = f"integrations:\n  hot:\n    base_url: https://hot.example\n    ~api_key: {SECRET}\n"
    await config.upload(store, "worker", text, fernet=fernet, environ={}, author="t")
    await store.activate("worker", "1", author="t")

    process = await asyncio.create_subprocess_exec(
        str(WORKER), env=_env(servers), stderr=asyncio.subprocess.PIPE
    )
    try:
        code = await asyncio.wait_for(process.wait(), 60)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.stderr is not None
    stderr = (await process.stderr.read()).decode()
    assert code == 1
    assert "integrations.hot.~api_key: a secret, but no Fernet key is configured" in stderr
    assert SECRET not in stderr
