from typing import Any

import asyncpg
import pytest

from libs.accounts import NewUser
from tests.integration.api.conftest import Api, auth
from tests.support import create_user


@pytest.fixture
async def root(db_pool: "asyncpg.Pool[Any]") -> NewUser:
    return await create_user(db_pool, name="root", credits=0, role="admin")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/admin/users"),
        ("POST", "/admin/users"),
        ("POST", "/admin/users/alice/grants"),
        ("GET", "/admin/users/alice/keys"),
        ("POST", "/admin/keys/00000000-0000-0000-0000-000000000001/revoke"),
        ("POST", "/admin/keys/00000000-0000-0000-0000-000000000001/rotate"),
    ],
)
async def test_admin_routes_need_the_admin_role(
    api: Api, alice: NewUser, method: str, path: str
) -> None:
    assert (await api.client.request(method, path)).status_code == 401
    refused = await api.client.request(method, path, headers=auth(alice), json={})
    assert refused.status_code == 403
    assert refused.json()["code"] == "forbidden"


async def test_create_grant_and_list_users(
    api: Api, root: NewUser, db_pool: "asyncpg.Pool[Any]"
) -> None:
    created = await api.client.post(
        "/admin/users", json={"name": "bea", "credits": 10}, headers=auth(root)
    )
    assert created.status_code == 201, created.text
    key = created.json()["api_key"]
    me = await api.client.get("/me", headers={"Authorization": f"Bearer {key}"})
    assert (me.json()["name"], me.json()["balance"]) == ("bea", 10)
    again = await api.client.post(
        "/admin/users", json={"name": "bea", "credits": 1}, headers=auth(root)
    )
    assert again.status_code == 409
    smuggled = await api.client.post(
        "/admin/users", json={"name": "x", "credits": 1, "balance": 9}, headers=auth(root)
    )
    assert smuggled.status_code == 422

    granted = await api.client.post(
        "/admin/users/bea/grants", json={"credits": 5}, headers=auth(root)
    )
    assert granted.json() == {"balance": 15}
    assert (
        await api.client.post("/admin/users/bea/grants", json={"credits": 0}, headers=auth(root))
    ).status_code == 422
    assert (
        await api.client.post("/admin/users/ghost/grants", json={"credits": 1}, headers=auth(root))
    ).status_code == 404
    ledger = await db_pool.fetchval(
        "SELECT sum(amount) FROM credit_ledger l JOIN users u ON u.id = l.user_id "
        "WHERE u.name = 'bea' AND kind = 'grant'"
    )
    assert ledger == 15
    names = [u["name"] for u in (await api.client.get("/admin/users", headers=auth(root))).json()]
    assert names == ["bea", "root"]


async def test_rotate_and_revoke_keys(api: Api, root: NewUser, alice: NewUser) -> None:
    keys = (await api.client.get("/admin/users/alice/keys", headers=auth(root))).json()
    assert len(keys) == 1
    assert keys[0]["revoked_at"] is None
    rotated = await api.client.post(f"/admin/keys/{keys[0]['id']}/rotate", headers=auth(root))
    new_key = rotated.json()["api_key"]
    assert (
        await api.client.post(f"/admin/keys/{keys[0]['id']}/rotate", headers=auth(root))
    ).status_code == 404
    new_id = next(
        k["id"]
        for k in (await api.client.get("/admin/users/alice/keys", headers=auth(root))).json()
        if k["revoked_at"] is None
    )
    revoked = await api.client.post(f"/admin/keys/{new_id}/revoke", headers=auth(root))
    assert revoked.status_code == 204
    keys = (await api.client.get("/admin/users/alice/keys", headers=auth(root))).json()
    assert all(k["revoked_at"] is not None for k in keys)
    assert new_key.startswith("rk_")
