"""Another user's webhook endpoints and deliveries are a 404, exactly as missing ones are, for
every call; they are never listed; and nothing a stranger tries changes them."""

import uuid
from typing import Any

import asyncpg

from libs.accounts import NewUser
from libs.contracts.webhooks import webhook_id
from libs.outcomes import Ended, record_outcomes
from tests.deals_support import submit_offer
from tests.integration.api.conftest import Api, auth
from tests.webhooks_support import HOOK, add_endpoint, add_one_off_secret, deliveries

ONE_OFF = "https://93.184.216.36/one-off"


async def _state(pool: "asyncpg.Pool[Any]") -> tuple[Any, ...]:
    endpoints = await pool.fetch("SELECT * FROM webhook_endpoints ORDER BY id")
    queued = await pool.fetch("SELECT * FROM webhook_deliveries ORDER BY id")
    return tuple(tuple(r.items()) for r in [*endpoints, *queued])


async def test_a_stranger_sees_and_changes_nothing_of_yours(
    api: Api, alice: NewUser, bob: NewUser, db_pool: "asyncpg.Pool[Any]"
) -> None:
    endpoint = await add_endpoint(db_pool, alice.id)
    await add_one_off_secret(db_pool, alice.id)
    request_id = await submit_offer(db_pool, alice.id, "demo", "echo", "a", webhook_url=ONE_OFF)
    await record_outcomes(db_pool, ended=[Ended(request_id, 1, "succeeded", ["a"])])
    rows = await deliveries(db_pool)
    assert len(rows) == 2
    one_off = next(r["id"] for r in rows if r["endpoint_id"] is None)
    to_endpoint = next(r["id"] for r in rows if r["endpoint_id"] == endpoint)
    await db_pool.execute("UPDATE webhook_deliveries SET status = 'delivered'")
    bobs = await add_endpoint(db_pool, bob.id)
    before = await _state(db_pool)

    missing, missing_delivery = uuid.uuid4(), uuid.uuid4()
    calls: list[tuple[str, str, dict[str, Any] | None]] = []
    for target in (endpoint, missing):
        calls += [
            ("GET", f"/webhooks/{target}", None),
            ("PATCH", f"/webhooks/{target}", {"description": "mine now"}),
            ("PATCH", f"/webhooks/{target}", {"url": HOOK + "/bob", "enabled": True}),
            ("DELETE", f"/webhooks/{target}", None),
            ("POST", f"/webhooks/{target}/rotate", {"overlap_s": 0}),
            ("POST", f"/webhooks/{target}/ping", None),
            ("GET", f"/webhooks/{target}/deliveries", None),
            ("GET", f"/webhooks/{target}/deliveries/{to_endpoint}", None),
            ("POST", f"/webhooks/{target}/deliveries/{to_endpoint}/redeliver", None),
        ]
    for delivery in (to_endpoint, one_off, missing_delivery):
        for key in (str(delivery), webhook_id(delivery)):
            calls += [
                ("GET", f"/webhooks/deliveries/{key}", None),
                ("POST", f"/webhooks/deliveries/{key}/redeliver", None),
                ("GET", f"/webhooks/{bobs}/deliveries/{key}", None),
                ("POST", f"/webhooks/{bobs}/deliveries/{key}/redeliver", None),
            ]
    answers: dict[tuple[str, str, str], list[Any]] = {}
    for method, path, body in calls:
        r = await api.client.request(method, path, json=body, headers=auth(bob))
        assert r.status_code == 404, (method, path, r.text)
        assert r.json()["code"] == "not_found"
        normal = path.replace(str(endpoint), "E")
        for delivery in (to_endpoint, one_off, missing_delivery):
            normal = normal.replace(str(delivery), "D").replace(webhook_id(delivery), "D")
        call = (method, normal.replace(str(missing), "E"), str(body))
        answers.setdefault(call, []).append(r.json())
    # Another user's is answered word for word as a missing one.
    for call, bodies in answers.items():
        assert len(bodies) > 1, call
        assert all(b == bodies[0] for b in bodies), call

    # Lists show only the caller's own.
    r = await api.client.get("/webhooks", headers=auth(bob))
    assert [e["id"] for e in r.json()] == [str(bobs)]
    for params in ({}, {"request_id": str(request_id)}, {"endpoint_id": str(endpoint)}):
        r = await api.client.get("/webhooks/deliveries", params=params, headers=auth(bob))
        assert r.status_code == 200
        assert r.json()["items"] == [], params
    r = await api.client.get(f"/webhooks/{bobs}/deliveries", headers=auth(bob))
    assert r.json()["items"] == []
    # Bob's one-off secret is his own business: he has none.
    assert (await api.client.get("/webhooks/secret", headers=auth(bob))).status_code == 404

    assert await _state(db_pool) == before

    # Alice still reaches all of it.
    r = await api.client.get("/webhooks/deliveries", headers=auth(alice))
    assert {d["id"] for d in r.json()["items"]} == {str(one_off), str(to_endpoint)}
    assert (await api.client.get(f"/webhooks/{endpoint}", headers=auth(alice))).status_code == 200
