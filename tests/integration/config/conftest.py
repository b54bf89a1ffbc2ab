"""A config store per backend: Postgres (the test database) always; MongoDB when ``MONGO_URL``
names a server, skipped with the reason otherwise."""

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from cryptography.fernet import Fernet, MultiFernet
from pymongo import AsyncMongoClient

from libs import config
from libs.config import ConfigStore
from libs.config.mongo import MongoConfigStore
from libs.config.postgres import PostgresConfigStore
from tests.support import ServerUrls

MONGO_SKIP = (
    "MongoDB config store contract NOT RUN: set MONGO_URL (e.g. mongodb://127.0.0.1:27017/"
    "relai_test) to run it; no MongoDB server is available on this machine"
)

Tamper = Callable[[str, str, str], Awaitable[None]]
"""Overwrite a stored version's document behind the store's back (config id, version, text)."""


@dataclass
class Backend:
    store: ConfigStore
    tamper: Tamper


async def clear_config_tables(pool: "asyncpg.Pool[Any]") -> None:
    await pool.execute("TRUNCATE configs, config_activations, config_versions RESTART IDENTITY")


@dataclass
class Followed:
    """A config a service follows: its store, and a bootstrap file for the service's
    ``RELAI_CONFIG_FILE`` that follows its active version with the key uploads use."""

    store: PostgresConfigStore
    bootstrap: Path
    fernet: MultiFernet

    async def upload(self, config_id: str, text: str) -> None:
        await config.upload(
            self.store, config_id, text, fernet=self.fernet, environ={}, author="ops"
        )


async def follow_config(
    config_id: str,
    *,
    servers: ServerUrls,
    pool: "asyncpg.Pool[Any]",
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Followed:
    await clear_config_tables(pool)
    key = Fernet.generate_key().decode()
    monkeypatch.setenv("CFG_FOLLOW_KEY", key)
    bootstrap = tmp_path / f"{config_id}.bootstrap.yaml"
    bootstrap.write_text(
        f"meta:\n  keys: [!ENV '${{CFG_FOLLOW_KEY}}']\nconfigs:\n  {config_id}: active\n"
    )
    store = PostgresConfigStore(pool, database_url=servers.database_url)
    return Followed(store, bootstrap, MultiFernet([Fernet(key)]))


@pytest.fixture(params=["postgres", "mongo"])
async def backend(
    request: pytest.FixtureRequest, servers: ServerUrls, db_pool: "asyncpg.Pool[Any]"
) -> AsyncIterator[Backend]:
    if request.param == "postgres":
        pool = db_pool
        await clear_config_tables(pool)

        async def tamper_pg(config_id: str, version: str, document: str) -> None:
            await pool.execute(
                "UPDATE config_versions SET document = $3 WHERE config_id = $1 AND version = $2",
                config_id,
                version,
                document,
            )

        yield Backend(PostgresConfigStore(pool, database_url=servers.database_url), tamper_pg)
        return
    url = os.environ.get("MONGO_URL")
    if not url:
        pytest.skip(MONGO_SKIP)
    prefix = f"relai_test_{uuid.uuid4().hex[:8]}"
    store = await MongoConfigStore.connect(url, collection=prefix)
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url)
    db = client.get_default_database(default="relai")

    async def tamper_mongo(config_id: str, version: str, document: str) -> None:
        await db[f"{prefix}_versions"].update_one(
            {"config_id": config_id, "version": version}, {"$set": {"document": document}}
        )

    try:
        yield Backend(store, tamper_mongo)
    finally:
        for suffix in ("", "_versions", "_activations"):
            await db.drop_collection(prefix + suffix)
        await client.close()
        await store.close()
