import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import make_url

from libs.db.pool import asyncpg_dsn
from tests.integration.cli.conftest import Relai
from tests.support import ServerUrls

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
async def empty_database(servers: ServerUrls, db_pool: "asyncpg.Pool[Any]") -> AsyncIterator[str]:
    url = make_url(servers.database_url)
    name = f"{url.database}_migrate"
    await db_pool.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await db_pool.execute(f'CREATE DATABASE "{name}"')
    yield url.set(database=name).render_as_string(hide_password=False)
    await db_pool.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def test_migrate_creates_the_schema_and_is_idempotent(
    relai: Relai, empty_database: str
) -> None:
    first = relai("migrate", DATABASE_URL=empty_database)
    assert first.returncode == 0, first.stderr
    assert "is at the latest schema" in first.stdout

    second = relai("migrate", DATABASE_URL=empty_database)
    assert second.returncode == 0, second.stderr

    conn = await asyncpg.connect(asyncpg_dsn(empty_database))
    try:
        tables = {
            row["tablename"]
            for row in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname='public'")
        }
        version = await conn.fetchval("SELECT version_num FROM alembic_version")
    finally:
        await conn.close()
    assert {"users", "api_keys", "handlers", "offers", "requests", "outbox"} <= tables
    assert version


async def test_commands_on_an_unmigrated_database_say_so(relai: Relai, empty_database: str) -> None:
    result = relai(
        "users", "create", "--name", "ada", "--credits", "1", DATABASE_URL=empty_database
    )

    assert result.returncode == 1
    assert "run `relai migrate`" in result.stderr


async def test_migrate_reports_a_missing_database_clearly(
    relai: Relai, servers: ServerUrls
) -> None:
    url = make_url(servers.database_url).set(database="relai_no_such_database")

    result = relai("migrate", DATABASE_URL=url.render_as_string(hide_password=False))

    assert result.returncode == 1
    assert 'database "relai_no_such_database" does not exist' in result.stderr
    assert "Traceback" not in result.stderr


async def test_upgrading_drops_the_credentials_stored_params_held(empty_database: str) -> None:
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("sqlalchemy.url", empty_database.replace("%", "%%"))
    await asyncio.to_thread(command.upgrade, config, "0015")
    conn = await asyncpg.connect(asyncpg_dsn(empty_database))
    try:
        legacy = {
            "model": "gpt-4o",
            "api_key": "sk-live-0123456789",
            "api_key_env": "RELAI_CONFIG_KEY",
            "headers": {"Authorization": "Bearer sk-live-0123456789", "X-Trace": "1"},
        }
        await conn.execute(
            "INSERT INTO handlers (id, credits, params, enabled) "
            "VALUES ('openai.chat', 0, $1, true)",
            json.dumps(legacy),
        )
        await asyncio.to_thread(command.upgrade, config, "head")
        params = json.loads(await conn.fetchval("SELECT params FROM handlers"))
    finally:
        await conn.close()
    assert params == {"model": "gpt-4o", "headers": {"X-Trace": "1"}}
