"""The fake provider as the workers reach it: an operator's integration naming it, its key in
the workers' environment, and the SSRF guard letting them call this host."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from cryptography.fernet import Fernet, MultiFernet

from libs import config
from libs.config.postgres import PostgresConfigStore
from tests.integration.config.conftest import clear_config_tables
from tests.support import ServerUrls

KEY = "sk-e2e-secret"
PROVIDER_ENV = {"RELAI_E2E_PROVIDER_KEY": KEY, "RELAI_SSRF_ALLOW": '["127.0.0.1"]'}
"""What the processes need to call the fake provider (add it to ``stack_env``)."""


@asynccontextmanager
async def integration(
    pool: "asyncpg.Pool[Any]", servers: ServerUrls, *, name: str, url: str
) -> AsyncIterator[None]:
    """The operator's integration ``name`` (``url``, the key read from the workers'
    environment) in the active config ``worker``, which the workers follow; removed after."""
    await clear_config_tables(pool)
    store = PostgresConfigStore(pool, database_url=servers.database_url)
    text = (
        f"integrations:\n  {name}:\n    base_url: {url}\n"
        "    api_key: !ENV ${RELAI_E2E_PROVIDER_KEY}\n"
    )
    fernet = MultiFernet([Fernet(Fernet.generate_key())])
    environ = {"RELAI_E2E_PROVIDER_KEY": KEY}
    await config.upload(
        store, "worker", text, fernet=fernet, environ=environ, author="ops", activate=True
    )
    try:
        yield
    finally:
        await clear_config_tables(pool)
