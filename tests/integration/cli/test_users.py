import json
import re
import socket
from typing import Any

import asyncpg

from libs.security import KEY_PREFIX, hash_api_key
from tests.integration.cli.conftest import Relai


async def test_create_prints_a_key_whose_hash_is_stored(
    relai: Relai, db_pool: "asyncpg.Pool[Any]"
) -> None:
    result = relai("users", "create", "--name", "ada", "--credits", "50")

    assert result.returncode == 0, result.stderr
    user_id = re.search(r"^id:\s+(\S+)$", result.stdout, re.MULTILINE)
    key = re.search(r"^api key:\s+(\S+)$", result.stdout, re.MULTILINE)
    assert user_id is not None, result.stdout
    assert key is not None, result.stdout
    assert key[1].startswith(KEY_PREFIX)
    assert "shown only this once" in result.stderr
    row = await db_pool.fetchrow(
        """SELECT u.id::text AS id, u.role, u.balance FROM users u
           JOIN api_keys k ON k.user_id = u.id WHERE k.key_hash = $1""",
        hash_api_key(key[1]),
    )
    assert row is not None
    assert dict(row) == {"id": user_id[1], "role": "user", "balance": 50}


async def test_create_admin_as_json(relai: Relai, db_pool: "asyncpg.Pool[Any]") -> None:
    result = relai("users", "create", "--name", "root", "--credits", "0", "--admin", "--json")

    assert result.returncode == 0, result.stderr
    created = json.loads(result.stdout)
    assert created["role"] == "admin"
    assert created["credits"] == 0
    stored = await db_pool.fetchval(
        "SELECT u.role FROM users u JOIN api_keys k ON k.user_id = u.id WHERE k.key_hash = $1",
        hash_api_key(created["api_key"]),
    )
    assert stored == "admin"


async def test_duplicate_name_fails_clearly(relai: Relai, db_pool: "asyncpg.Pool[Any]") -> None:
    assert relai("users", "create", "--name", "ada", "--credits", "5").returncode == 0

    again = relai("users", "create", "--name", "ada", "--credits", "7")

    assert again.returncode != 0
    assert "a user named 'ada' already exists" in again.stderr
    assert "Traceback" not in again.stderr
    assert again.stdout == ""
    assert await db_pool.fetchval("SELECT count(*) FROM users") == 1
    assert await db_pool.fetchval("SELECT count(*) FROM api_keys") == 1


async def test_negative_credits_are_refused(relai: Relai, db_pool: "asyncpg.Pool[Any]") -> None:
    result = relai("users", "create", "--name", "ada", "--credits", "-1")

    assert result.returncode != 0
    assert "--credits" in result.stderr
    assert await db_pool.fetchval("SELECT count(*) FROM users") == 0


async def test_unreachable_database_fails_clearly(relai: Relai) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"postgresql://postgres:secret@127.0.0.1:{port}/relai"

    result = relai("users", "create", "--name", "ada", "--credits", "1", DATABASE_URL=url)

    assert result.returncode == 1
    assert "cannot connect to Postgres at postgresql://postgres:***@127.0.0.1" in result.stderr
    assert "secret" not in result.stderr
    assert "Traceback" not in result.stderr


async def test_grant_adds_credits_through_the_ledger(
    relai: Relai, db_pool: "asyncpg.Pool[Any]"
) -> None:
    assert relai("users", "create", "--name", "gus", "--credits", "5").returncode == 0
    granted = relai("users", "grant", "--name", "gus", "--credits", "7")
    assert granted.returncode == 0, granted.stderr
    assert "'gus' now has 12 credits" in granted.stdout
    grants = await db_pool.fetch(
        "SELECT amount FROM credit_ledger l JOIN users u ON u.id = l.user_id "
        "WHERE u.name = 'gus' AND kind = 'grant' ORDER BY l.id"
    )
    assert [g["amount"] for g in grants] == [5, 7]
    missing = relai("users", "grant", "--name", "ghost", "--credits", "1")
    assert missing.returncode == 1
    assert "no user named 'ghost'" in missing.stderr


async def test_names_with_control_characters_are_refused(
    relai: Relai, db_pool: "asyncpg.Pool[Any]"
) -> None:
    for name in ("evil\x85name", "csi\x9b", "bell\x07", "tab\tname"):
        result = relai("users", "create", "--name", name, "--credits", "1")

        assert result.returncode != 0, name
        assert "control character" in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
    assert await db_pool.fetchval("SELECT count(*) FROM users") == 0
