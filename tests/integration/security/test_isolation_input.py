"""Isolation (another user's request is exactly as missing as a missing one) and input that
would change ownership or price (422, nothing written)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from libs.accounts import NewUser
from libs.catalog import CatalogSpec, PromptTemplate, TemplateError
from tests.deals_support import load_deals_catalog
from tests.integration.api.conftest import Api, auth
from tests.support import create_user

SMUGGLED = {
    "user_id": str(uuid.uuid4()),
    "price": 0,
    "status": "succeeded",
    "balance": 10**9,
    "results": ["forged"],
}


async def test_another_users_request_is_404_like_a_missing_one(
    api: Api, alice: NewUser, bob: NewUser
) -> None:
    submitted = await api.client.post("/svc/demo/echo", json={"text": "mine"}, headers=auth(alice))
    request_id = submitted.json()["id"]
    missing_id = str(uuid.uuid4())

    mine = await api.client.get(f"/svc/request/{request_id}", headers=auth(alice))
    assert mine.status_code == 200
    theirs = await api.client.get(f"/svc/request/{request_id}", headers=auth(bob))
    missing = await api.client.get(f"/svc/request/{missing_id}", headers=auth(bob))
    assert theirs.status_code == missing.status_code == 404
    assert theirs.content == missing.content
    assert theirs.headers["content-length"] == missing.headers["content-length"]

    cancel_theirs = await api.client.post(f"/svc/request/{request_id}/cancel", headers=auth(bob))
    cancel_missing = await api.client.post(f"/svc/request/{missing_id}/cancel", headers=auth(bob))
    assert cancel_theirs.status_code == cancel_missing.status_code == 404
    assert cancel_theirs.content == cancel_missing.content
    still = await api.client.get(f"/svc/request/{request_id}", headers=auth(alice))
    assert still.json()["status"] != "cancelled"

    listed = await api.client.get("/svc/requests", headers=auth(bob))
    assert listed.json()["items"] == []

    codes = []
    for target in (request_id, missing_id):
        url = f"{api.ws_url}/ws/requests/{target}"
        async with connect(url, additional_headers=auth(bob)) as ws:
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), timeout=5)
            assert closed.value.rcvd is not None
            codes.append((closed.value.rcvd.code, closed.value.rcvd.reason))
    assert codes == [(4404, "no such request")] * 2

    # Bob submitting the same inputs gets his own request, not a view of alice's.
    same = await api.client.post("/svc/demo/echo", json={"text": "mine"}, headers=auth(bob))
    assert same.status_code == 202
    assert (same.json()["id"], same.json()["duplicate"]) != (request_id, True)


async def _balances(pool: asyncpg.Pool[Any]) -> list[tuple[str, int, int]]:
    rows = await pool.fetch("SELECT name, balance, reserved FROM users ORDER BY name")
    return [(r["name"], r["balance"], r["reserved"]) for r in rows]


async def test_fields_that_would_change_ownership_or_price_are_422(
    api: Api, alice: NewUser, db_pool: asyncpg.Pool[Any]
) -> None:
    root = await create_user(db_pool, name="root", credits=0, role="admin")
    before = await _balances(db_pool)
    for field, value in SMUGGLED.items():
        targets: list[tuple[str, dict[str, Any], NewUser]] = [
            ("/svc/demo/echo", {"text": "x"}, alice),
            ("/ask", {"prompt": "x"}, alice),
            ("/admin/users", {"name": f"u-{field}", "credits": 1}, root),
            ("/admin/users/alice/grants", {"credits": 1}, root),
            ("/admin/users/alice/identities", {"issuer": "https://i", "subject": field}, root),
        ]
        for path, body, who in targets:
            r = await api.client.post(path, json={**body, field: value}, headers=auth(who))
            assert r.status_code == 422, (path, field, r.text)
            assert field in r.text, (path, field, r.text)
        ticket = await api.client.post("/ws/ticket", json={field: value}, headers=auth(alice))
        assert ticket.status_code == 200  # takes no body; a body changes nothing it issues
    assert await _balances(db_pool) == before
    assert await db_pool.fetchval("SELECT count(*) FROM requests") == 0
    assert await db_pool.fetchval("SELECT count(*) FROM identities") == 0
    assert await db_pool.fetchval("SELECT count(*) FROM users") == 2


async def test_body_and_prompt_limits(api: Api, alice: NewUser, db_pool: asyncpg.Pool[Any]) -> None:
    huge = orjson.dumps({"text": "x" * 1_100_000})
    too_big = await api.client.post(
        "/svc/demo/echo",
        content=huge,
        headers={**auth(alice), "content-type": "application/json"},
    )
    assert too_big.status_code == 413
    long = await api.client.post(
        "/svc/demo/echo", json={"text": "x" * 200_001}, headers=auth(alice)
    )
    assert long.status_code == 422
    assert long.json()["limit"] == 200_000
    for body in (b"[1]", b"not json", b'"text"'):
        bad = await api.client.post(
            "/svc/demo/echo",
            content=body,
            headers={**auth(alice), "content-type": "application/json"},
        )
        assert bad.status_code == 400, body
    assert await db_pool.fetchval("SELECT count(*) FROM requests") == 0


@pytest.mark.parametrize("template", ["{x.__class__}", "{x[0]}", "{x!r}", "{x:>10}", "{0}"])
def test_templates_with_attribute_index_or_conversion_are_refused_at_save(template: str) -> None:
    spec = {
        "handlers": [{"id": "echo.text"}],
        "offers": [
            {
                "service": "s",
                "action": "a",
                "price": 1,
                "prompt_template": template,
                "handler": "echo.text",
            }
        ],
    }
    with pytest.raises(ValueError, match="template field"):
        CatalogSpec.model_validate(spec)
    with pytest.raises(TemplateError):
        PromptTemplate.parse(template)


async def test_an_unsafe_template_written_around_the_catalog_is_refused_at_render(
    api: Api, alice: NewUser, db_pool: asyncpg.Pool[Any]
) -> None:
    await db_pool.execute(
        "INSERT INTO offers (id, service, action, price, prompt_template, handler_id) "
        "VALUES ($1, 'evil', 'peek', 1, '{x.__class__.__mro__}', 'echo.text')",
        uuid.uuid4(),
    )
    r = await api.client.post("/svc/evil/peek", json={"x": "1"}, headers=auth(alice))
    assert r.status_code == 404
    offers = await api.client.get("/svc", headers=auth(alice))
    assert offers.status_code == 200
    assert "evil" not in {o["service"] for o in offers.json()}
    assert (
        await api.client.post("/svc/demo/echo", json={"text": "ok"}, headers=auth(alice))
    ).status_code == 202


async def test_values_postgres_cannot_hold_are_4xx_not_500(
    api: Api, alice: NewUser, db_pool: asyncpg.Pool[Any]
) -> None:
    root = await create_user(db_pool, name="root", credits=0, role="admin")
    nul = await api.client.post("/svc/demo/echo", json={"text": "a\x00b"}, headers=auth(alice))
    assert nul.status_code == 422
    assert nul.json()["not_text"] == ["text"]
    for path, body in [
        ("/admin/users", {"name": "evil\x00", "credits": 1}),
        ("/admin/users", {"name": "rich", "credits": 10**16}),
        ("/admin/users/alice/grants", {"credits": 10**30}),
        ("/admin/users/ali%00ce/grants", {"credits": 1}),
        ("/admin/users/alice/identities", {"issuer": "https://i", "subject": "a\x00"}),
    ]:
        r = await api.client.post(path, json=body, headers=auth(root))
        assert r.status_code == 422, (path, r.text)
    for params in ({"n": 2**64}, {"deep": [{"n": -(2**63) - 1}]}, {"n": 2**53 + 1}):
        huge = await api.client.put(
            "/admin/handlers", json={"id": "echo.huge", "params": params}, headers=auth(root)
        )
        assert huge.status_code == 422, huge.text
        assert "params holds a number beyond 2**53" in huge.text
    huge_offset = await api.client.get(f"/admin/users?offset={10**22}", headers=auth(root))
    assert huge_offset.status_code == 422
    await db_pool.execute("UPDATE users SET balance = 9223372036854775000 WHERE name = 'alice'")
    overflow = await api.client.post(
        "/admin/users/alice/grants", json={"credits": 10**15}, headers=auth(root)
    )
    assert overflow.status_code == 409
    assert await db_pool.fetchval("SELECT count(*) FROM credit_ledger WHERE kind = 'grant'") == 2
    assert await db_pool.fetchval("SELECT count(*) FROM requests") == 0


LONE_SURROGATE = "a\\ud800b"
"""JSON text that decodes to a string holding an unpaired surrogate, which Postgres cannot
store (the JSON itself is valid, so only a check of the decoded text catches it)."""


async def _counts(pool: asyncpg.Pool[Any]) -> list[int]:
    return [
        await pool.fetchval(f"SELECT count(*) FROM {table}")
        for table in ("users", "api_keys", "identities", "requests", "credit_ledger")
    ]


async def test_text_postgres_cannot_store_is_422_naming_the_field_on_every_body(
    api: Api, alice: NewUser, db_pool: asyncpg.Pool[Any]
) -> None:
    await load_deals_catalog(db_pool)
    root = await create_user(db_pool, name="root", credits=0, role="admin")
    cases = [
        (alice, "/ask", '{"prompt": "%s"}', "prompt"),
        (alice, "/deal/chain", '{"inputs": {"text": "%s"}}', "text"),
        (alice, "/deal/chain", '{"inputs": {"text": "hi"}, "addons": ["%s"]}', "addons"),
        (root, "/admin/users", '{"name": "%s", "credits": 1}', "name"),
        (
            root,
            "/admin/users/alice/identities",
            '{"issuer": "%s", "subject": "s"}',
            "issuer",
        ),
        (
            root,
            "/admin/users/alice/identities",
            '{"issuer": "https://i", "subject": "%s"}',
            "subject",
        ),
    ]
    before = await _counts(db_pool)
    for user, path, template, field in cases:
        for bad, problem in ((LONE_SURROGATE, "surrogate"), ("a\\u0000b", "NUL")):
            r = await api.client.post(
                path,
                content=(template % bad).encode(),
                headers={**auth(user), "content-type": "application/json"},
            )
            assert r.status_code == 422, (path, bad, r.text)
            assert r.headers["content-type"] == "application/json"
            body = r.json()
            assert body["code"] == "invalid_inputs", (path, r.text)
            assert field in body["detail"], (path, r.text)
            assert problem in body["detail"], (path, r.text)
            assert "a\ud800b" not in r.text
    assert await _counts(db_pool) == before


@pytest.mark.parametrize("name", ["evil\x85", "bell\x07", "csi\x9b", "tab\t", "del\x7f"])
async def test_user_names_with_control_characters_are_422(
    api: Api, db_pool: asyncpg.Pool[Any], name: str
) -> None:
    root = await create_user(db_pool, name="root", credits=0, role="admin")
    before = await _counts(db_pool)
    r = await api.client.post("/admin/users", json={"name": name, "credits": 1}, headers=auth(root))
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "invalid_inputs"
    assert "name" in r.json()["detail"]
    assert "control character" in r.json()["detail"]
    assert await _counts(db_pool) == before
