"""Users' scheduling weights: an admin sets one over HTTP (Postgres first, then the workers'
mirror in Redis), the listing shows it, and recon rebuilds the mirror from Postgres whatever
Redis lost."""

from typing import Any

import asyncpg
from redis.asyncio import Redis

from libs.accounts import NewUser
from libs.contracts.limits import LIMITS_WEIGHTS_KEY
from services.recon.scheduling.weights import WeightsLoop
from tests.integration.api.conftest import Api, auth
from tests.support import create_user


async def _mirror(redis: Redis) -> dict[str, str]:
    raw = await redis.hgetall(LIMITS_WEIGHTS_KEY)
    return {_text(k): _text(v) for k, v in raw.items()}


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def test_an_admin_sets_a_weight_and_the_workers_mirror_follows(
    api: Api, alice: NewUser, bob: NewUser, db_pool: "asyncpg.Pool[Any]", redis_client: Redis
) -> None:
    root = await create_user(db_pool, name="root", credits=0, role="admin")

    r = await api.client.put("/admin/users/alice/weight", json={"weight": 4}, headers=auth(root))
    assert r.status_code == 200, r.text
    assert r.json() == {"name": "alice", "weight": 4}
    assert await _mirror(redis_client) == {str(alice.id): "4"}
    users = {
        u["name"]: u for u in (await api.client.get("/admin/users", headers=auth(root))).json()
    }
    assert (users["alice"]["weight"], users["bob"]["weight"]) == (4, 1)

    # Back to 1, the default: no entry.
    r = await api.client.put("/admin/users/alice/weight", json={"weight": 1}, headers=auth(root))
    assert r.status_code == 200, r.text
    assert await _mirror(redis_client) == {}


async def test_a_bad_weight_or_user_is_refused_and_changes_nothing(
    api: Api, alice: NewUser, db_pool: "asyncpg.Pool[Any]", redis_client: Redis
) -> None:
    root = await create_user(db_pool, name="root", credits=0, role="admin")
    for weight in (0, 101, "3", 2.5):
        r = await api.client.put(
            "/admin/users/alice/weight", json={"weight": weight}, headers=auth(root)
        )
        assert r.status_code == 422, (weight, r.text)
    missing = await api.client.put(
        "/admin/users/nobody/weight", json={"weight": 2}, headers=auth(root)
    )
    assert missing.status_code == 404, missing.text
    assert "no user named 'nobody'" in missing.json()["detail"]
    mine = await api.client.put(
        "/admin/users/alice/weight", json={"weight": 9}, headers=auth(alice)
    )
    assert mine.status_code == 403
    assert await db_pool.fetchval("SELECT max(weight) FROM users") == 1
    assert await _mirror(redis_client) == {}


async def test_recon_rebuilds_the_mirror_from_postgres(
    api: Api, alice: NewUser, bob: NewUser, db_pool: "asyncpg.Pool[Any]", redis_client: Redis
) -> None:
    root = await create_user(db_pool, name="root", credits=0, role="admin")
    for name, weight in (("alice", 3), ("bob", 7)):
        r = await api.client.put(
            f"/admin/users/{name}/weight", json={"weight": weight}, headers=auth(root)
        )
        assert r.status_code == 200, r.text
    loop = WeightsLoop(db_pool, redis_client, interval_s=10)

    await redis_client.delete(LIMITS_WEIGHTS_KEY)  # Redis restarted empty, or failed over
    await redis_client.hset(LIMITS_WEIGHTS_KEY, "stale-user", 50)
    assert await loop.run_once() == 2

    assert await _mirror(redis_client) == {str(alice.id): "3", str(bob.id): "7"}
