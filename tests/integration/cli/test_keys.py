import asyncio
import re
import uuid
from typing import Any

import asyncpg
import pytest

from libs.security import hash_api_key
from tests.integration.api.conftest import serving, settings_for
from tests.integration.cli.conftest import Relai
from tests.support import ServerUrls, create_user


def _key(output: str) -> str:
    found = re.search(r"^api key: (\S+)$", output, re.MULTILINE)
    assert found is not None, output
    return found[1]


def _ids(listing: str) -> list[tuple[str, str]]:
    return re.findall(r"^(\S+)  \S+…  created [\d-]+ [\d:]+  (live|revoked)", listing, re.M)


async def test_issue_list_revoke_and_rotate(relai: Relai, db_pool: "asyncpg.Pool[Any]") -> None:
    await create_user(db_pool, name="ada", credits=1)
    second = _key(relai("keys", "create", "--user", "ada").stdout)
    listed = _ids(relai("keys", "list", "--user", "ada").stdout)
    assert [state for _, state in listed] == ["live", "live"]
    newest = await db_pool.fetchval(
        "SELECT id::text FROM api_keys WHERE key_hash = $1", hash_api_key(second)
    )
    assert listed[0][0] == newest

    rotated = relai("keys", "rotate", newest)
    assert rotated.returncode == 0, rotated.stderr
    third = _key(rotated.stdout)
    states = dict(_ids(relai("keys", "list", "--user", "ada").stdout))
    assert states[newest] == "revoked"
    assert sorted(states.values()) == ["live", "live", "revoked"]
    assert relai("keys", "rotate", newest).returncode == 1  # a revoked key cannot be rotated

    third_id = await db_pool.fetchval(
        "SELECT id::text FROM api_keys WHERE key_hash = $1", hash_api_key(third)
    )
    assert relai("keys", "revoke", third_id).returncode == 0
    assert relai("keys", "revoke", third_id).returncode == 0  # idempotent
    assert dict(_ids(relai("keys", "list", "--user", "ada").stdout))[third_id] == "revoked"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("keys", "list", "--user", "nobody"), "no user named 'nobody'"),
        (("keys", "create", "--user", "nobody"), "no user named 'nobody'"),
        (("keys", "revoke", "not-a-uuid"), "'not-a-uuid' is not a key id"),
        (("keys", "revoke", str(uuid.UUID(int=1))), "no key with id"),
    ],
)
def test_mistakes_are_clear_errors(relai: Relai, args: tuple[str, ...], message: str) -> None:
    result = relai(*args)
    assert result.returncode == 1
    assert message in result.stderr


async def test_a_revoked_key_stops_working_within_the_cache_ttl(
    relai: Relai, servers: ServerUrls, db_pool: "asyncpg.Pool[Any]"
) -> None:
    user = await create_user(db_pool, name="eve", credits=1)
    headers = {"Authorization": f"Bearer {user.api_key}"}
    async with serving(settings_for(servers, auth_cache_ttl_s=0.3)) as api:
        assert (await api.client.get("/me", headers=headers)).status_code == 200
        key_id = await db_pool.fetchval("SELECT id::text FROM api_keys WHERE user_id = $1", user.id)
        assert relai("keys", "revoke", key_id).returncode == 0
        await asyncio.sleep(0.4)
        assert (await api.client.get("/me", headers=headers)).status_code == 401
