from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from libs.db.pool import asyncpg_dsn
from tests.integration.cli.conftest import Relai
from tests.support import ServerUrls


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
