"""Webhook endpoints over HTTP: created with a secret shown once, listed and read without it,
changed, re-enabled, rotated with an overlap window, deleted; every URL through the SSRF guard;
at most 20 per user; bad input a 4xx in the one error shape, with nothing written."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from libs.accounts import NewUser
from libs.contracts.webhooks import REQUEST_EVENTS, SECRET_PREFIX
from tests.integration.api.conftest import Api, auth, serving, settings_for
from tests.support import ServerUrls

HOOK = "https://93.184.216.34/hooks/relai"
"""A public address: no name to resolve, nothing is sent to it."""


async def _create(api: Api, user: NewUser, **body: Any) -> dict[str, Any]:
    r = await api.client.post("/webhooks", json={"url": HOOK, **body}, headers=auth(user))
    assert r.status_code == 201, r.text
    created: dict[str, Any] = r.json()
    return created


async def _endpoint_row(pool: "asyncpg.Pool[Any]", endpoint_id: str) -> asyncpg.Record:
    row: asyncpg.Record | None = await pool.fetchrow(
        "SELECT * FROM webhook_endpoints WHERE id = $1::uuid", endpoint_id
    )
    assert row is not None
    return row


async def test_an_endpoint_is_created_listed_read_changed_and_deleted(
    api: Api, alice: NewUser, db_pool: "asyncpg.Pool[Any]"
) -> None:
    created = await _create(api, alice, description="orders")
    assert created["secret"].startswith(SECRET_PREFIX)
    assert created["url"] == HOOK
    assert created["events"] == list(REQUEST_EVENTS)  # the default
    assert (created["enabled"], created["disabled_reason"], created["description"]) == (
        True,
        None,
        "orders",
    )
    row = await _endpoint_row(db_pool, created["id"])
    assert row["secret"] == created["secret"]
    assert row["user_id"] == alice.id

    # The secret is shown at creation only: never listed, never read.
    listed = await api.client.get("/webhooks", headers=auth(alice))
    assert listed.status_code == 200
    assert [e["id"] for e in listed.json()] == [created["id"]]
    assert "secret" not in listed.json()[0]
    one = await api.client.get(f"/webhooks/{created['id']}", headers=auth(alice))
    assert one.status_code == 200
    assert "secret" not in one.json()
    assert one.json()["previous_secret_until"] is None

    changed = await api.client.patch(
        f"/webhooks/{created['id']}",
        json={
            "url": "https://93.184.216.35/other",
            "events": ["step.failed", "request.failed", "step.failed"],
            "description": "",
        },
        headers=auth(alice),
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["url"] == "https://93.184.216.35/other"
    assert changed.json()["events"] == ["step.failed", "request.failed"]  # each once
    assert changed.json()["description"] == ""
    assert "secret" not in changed.json()
    assert (await _endpoint_row(db_pool, created["id"]))["secret"] == created["secret"]

    gone = await api.client.delete(f"/webhooks/{created['id']}", headers=auth(alice))
    assert gone.status_code == 204
    assert gone.content == b""
    again = await api.client.get(f"/webhooks/{created['id']}", headers=auth(alice))
    assert again.status_code == 404
    assert again.json()["code"] == "not_found"
    assert (
        await api.client.delete(f"/webhooks/{created['id']}", headers=auth(alice))
    ).status_code == 404
    assert (await api.client.get("/webhooks", headers=auth(alice))).json() == []


async def test_rotation_shows_the_new_secret_once_and_keeps_the_old_one_signing_a_while(
    api: Api, alice: NewUser, db_pool: "asyncpg.Pool[Any]"
) -> None:
    created = await _create(api, alice)
    before = datetime.now(UTC)
    r = await api.client.post(
        f"/webhooks/{created['id']}/rotate", json={"overlap_s": 3600}, headers=auth(alice)
    )
    assert r.status_code == 200, r.text
    rotated = r.json()
    assert rotated["secret"].startswith(SECRET_PREFIX)
    assert rotated["secret"] != created["secret"]
    until = datetime.fromisoformat(rotated["previous_secret_until"])
    assert before + timedelta(seconds=3590) < until < before + timedelta(seconds=3700)
    row = await _endpoint_row(db_pool, created["id"])
    assert (row["secret"], row["previous_secret"]) == (rotated["secret"], created["secret"])
    assert row["previous_until"] == until
    read = (await api.client.get(f"/webhooks/{created['id']}", headers=auth(alice))).json()
    assert "secret" not in read
    assert datetime.fromisoformat(read["previous_secret_until"]) == until

    # Without a body, the overlap is a day; with 0 the replaced secret stops at once.
    r = await api.client.post(f"/webhooks/{created['id']}/rotate", headers=auth(alice))
    assert r.status_code == 200
    row = await _endpoint_row(db_pool, created["id"])
    assert row["previous_secret"] == rotated["secret"]
    assert timedelta(hours=23) < row["previous_until"] - before < timedelta(hours=25)
    r = await api.client.post(
        f"/webhooks/{created['id']}/rotate", json={"overlap_s": 0}, headers=auth(alice)
    )
    assert r.status_code == 200
    assert r.json()["previous_secret_until"] is None

    last = r.json()["secret"]
    for bad in (-1, 604_801, "60", True, 1.5):
        r = await api.client.post(
            f"/webhooks/{created['id']}/rotate", json={"overlap_s": bad}, headers=auth(alice)
        )
        assert r.status_code == 422, (bad, r.text)
        assert r.json()["fields"] == ["overlap_s"]
    assert (await _endpoint_row(db_pool, created["id"]))["secret"] == last


async def test_re_enabling_clears_what_the_dispatcher_recorded(
    api: Api, alice: NewUser, db_pool: "asyncpg.Pool[Any]"
) -> None:
    created = await _create(api, alice)
    # As the dispatcher leaves an endpoint that failed for too long.
    await db_pool.execute(
        "UPDATE webhook_endpoints SET enabled = false, disabled_reason = 'failing for 3 days',"
        " failing_since = now() - interval '3 days' WHERE id = $1::uuid",
        created["id"],
    )
    read = (await api.client.get(f"/webhooks/{created['id']}", headers=auth(alice))).json()
    assert (read["enabled"], read["disabled_reason"]) == (False, "failing for 3 days")
    assert read["failing_since"] is not None

    # Disabling a disabled endpoint keeps its reason; changing the rest leaves it disabled.
    r = await api.client.patch(
        f"/webhooks/{created['id']}", json={"enabled": False}, headers=auth(alice)
    )
    assert r.json()["disabled_reason"] == "failing for 3 days"
    r = await api.client.patch(
        f"/webhooks/{created['id']}", json={"description": "fixed"}, headers=auth(alice)
    )
    assert (r.json()["enabled"], r.json()["description"]) == (False, "fixed")

    r = await api.client.patch(
        f"/webhooks/{created['id']}", json={"enabled": True}, headers=auth(alice)
    )
    assert r.status_code == 200
    assert (r.json()["enabled"], r.json()["disabled_reason"], r.json()["failing_since"]) == (
        True,
        None,
        None,
    )

    r = await api.client.patch(
        f"/webhooks/{created['id']}", json={"enabled": False}, headers=auth(alice)
    )
    assert (r.json()["enabled"], r.json()["disabled_reason"]) == (False, "disabled by its owner")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": HOOK, "events": ["request.done"]}, "events.0"),
        ({"url": HOOK, "events": []}, "events"),
        ({"url": HOOK, "events": "request.failed"}, "events"),
        ({"url": "ftp://93.184.216.34/x"}, "url"),
        ({"url": "93.184.216.34/x"}, "url"),
        ({"url": "https://93.184.216.34/" + "x" * 2048}, "url"),
        ({"url": "https://93.184.216.34/\u0000"}, "url"),
        ({"url": HOOK, "description": "d" * 501}, "description"),
        ({"url": HOOK, "secret": "whsec_mine"}, "secret"),
        ({}, "url"),
    ],
)
async def test_bad_input_is_a_422_naming_the_field_and_writes_nothing(
    api: Api, alice: NewUser, db_pool: "asyncpg.Pool[Any]", body: dict[str, Any], field: str
) -> None:
    r = await api.client.post("/webhooks", json=body, headers=auth(alice))
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "invalid_inputs"
    assert field in r.json()["fields"]
    assert await db_pool.fetchval("SELECT count(*) FROM webhook_endpoints") == 0


async def test_an_unknown_event_is_named_with_the_known_ones(api: Api, alice: NewUser) -> None:
    r = await api.client.post(
        "/webhooks", json={"url": HOOK, "events": ["request.done"]}, headers=auth(alice)
    )
    assert "unknown event; the events are: request.succeeded" in r.json()["detail"]


async def test_patch_refuses_null_and_unknown_fields(api: Api, alice: NewUser) -> None:
    created = await _create(api, alice)
    for body in ({"url": None}, {"enabled": None}, {"enabled": "true"}, {"secret": "x"}):
        r = await api.client.patch(f"/webhooks/{created['id']}", json=body, headers=auth(alice))
        assert r.status_code == 422, (body, r.text)
    r = await api.client.patch(
        f"/webhooks/{created['id']}", json={"url": "http://127.0.0.1:9/"}, headers=auth(alice)
    )
    assert r.status_code == 422
    assert "loopback" in r.json()["detail"]
    read = (await api.client.get(f"/webhooks/{created['id']}", headers=auth(alice))).json()
    assert read["url"] == HOOK


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1:8080/hook", "127.0.0.1 is a loopback address"),
        ("http://169.254.169.254/latest/meta-data", "169.254.169.254 is a cloud metadata address"),
        ("http://10.1.2.3/hook", "10.1.2.3 is a private address"),
        ("http://localhost/hook", "localhost is a local or cloud metadata name"),
        ("http://user:pw@93.184.216.34/hook", "credentials"),
        ("http://2130706433/hook", "127.0.0.1 is a loopback address"),
    ],
)
async def test_private_addresses_are_refused(
    api: Api, alice: NewUser, db_pool: "asyncpg.Pool[Any]", url: str, reason: str
) -> None:
    r = await api.client.post("/webhooks", json={"url": url}, headers=auth(alice))
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "invalid_inputs"
    assert r.json()["fields"] == ["url"]
    assert reason in r.json()["detail"]
    assert await db_pool.fetchval("SELECT count(*) FROM webhook_endpoints") == 0


@pytest.fixture
async def allowing_loopback(
    servers: ServerUrls, db_pool: "asyncpg.Pool[Any]"
) -> AsyncIterator[Api]:
    async with serving(settings_for(servers, ssrf_allow=["127.0.0.1"])) as running:
        yield running


async def test_a_private_address_the_operator_allows_is_accepted(
    allowing_loopback: Api, alice: NewUser
) -> None:
    api = allowing_loopback
    r = await api.client.post(
        "/webhooks", json={"url": "http://127.0.0.1:8080/hook"}, headers=auth(alice)
    )
    assert r.status_code == 201, r.text
    # Only what is allowed: the metadata address is still refused.
    r = await api.client.post(
        "/webhooks", json={"url": "http://169.254.169.254/"}, headers=auth(alice)
    )
    assert r.status_code == 422


async def test_at_most_twenty_endpoints(
    api: Api, alice: NewUser, bob: NewUser, db_pool: "asyncpg.Pool[Any]"
) -> None:
    for n in range(20):
        await _create(api, alice, description=str(n))
    r = await api.client.post("/webhooks", json={"url": HOOK}, headers=auth(alice))
    assert r.status_code == 409, r.text
    assert r.json()["code"] == "conflict"
    assert r.json()["limit"] == 20
    assert "20 webhook endpoints" in r.json()["detail"]
    assert await db_pool.fetchval("SELECT count(*) FROM webhook_endpoints") == 20
    await _create(api, bob)  # per user
    first = (await api.client.get("/webhooks", headers=auth(alice))).json()[0]
    assert first["description"] == "0"  # oldest first
    await api.client.delete(f"/webhooks/{first['id']}", headers=auth(alice))
    await _create(api, alice)


async def test_unknown_and_malformed_endpoint_ids_are_404(api: Api, alice: NewUser) -> None:
    for path in (
        "/webhooks/00000000-0000-0000-0000-000000000000",
        "/webhooks/not-an-id",
        "/webhooks/00000000-0000-0000-0000-000000000000/deliveries",
    ):
        r = await api.client.get(path, headers=auth(alice))
        assert r.status_code == 404, (path, r.text)
        assert r.json()["code"] == "not_found"
    # The static paths beside the endpoints' take only their own methods.
    r = await api.client.delete("/webhooks/secret", headers=auth(alice))
    assert r.status_code == 405
    assert r.headers["allow"] == "GET, POST"


async def test_the_one_off_secret_is_shown_at_creation_and_rotation_only(
    api: Api, alice: NewUser, db_pool: "asyncpg.Pool[Any]"
) -> None:
    r = await api.client.get("/webhooks/secret", headers=auth(alice))
    assert r.status_code == 404
    assert "POST /webhooks/secret" in r.json()["detail"]

    r = await api.client.post("/webhooks/secret", headers=auth(alice))
    assert r.status_code == 201, r.text
    first = r.json()
    assert first["secret"].startswith(SECRET_PREFIX)
    assert first["previous_secret_until"] is None
    r = await api.client.get("/webhooks/secret", headers=auth(alice))
    assert r.status_code == 200
    assert "secret" not in r.json()

    r = await api.client.post("/webhooks/secret", json={"overlap_s": 60}, headers=auth(alice))
    assert r.status_code == 200, r.text
    second = r.json()
    assert second["secret"] not in (first["secret"], None)
    assert second["previous_secret_until"] is not None
    row = await db_pool.fetchrow("SELECT * FROM webhook_secrets WHERE user_id = $1", alice.id)
    assert row is not None
    assert (row["secret"], row["previous_secret"]) == (second["secret"], first["secret"])
    assert (
        timedelta(seconds=50) < row["previous_until"] - row["updated_at"] <= timedelta(seconds=60)
    )
    r = await api.client.post("/webhooks/secret", json={"overlap_s": 604_801}, headers=auth(alice))
    assert r.status_code == 422
