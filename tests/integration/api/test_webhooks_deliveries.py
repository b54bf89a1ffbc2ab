"""Deliveries over HTTP: each with its attempts (written here as a dispatcher writes them), newest
first, filtered and paged; a ping queues a test event (a disabled endpoint's too); a redelivery
sends the same id and body again, and is refused while the delivery is still pending."""

import uuid
from typing import Any

import asyncpg
import orjson

from libs.accounts import NewUser
from libs.contracts.webhooks import webhook_id
from libs.outcomes import Ended, record_outcomes
from tests.deals_support import submit_offer
from tests.integration.api.conftest import Api, auth
from tests.webhooks_support import add_endpoint, add_one_off_secret, deliveries

ONE_OFF = "https://93.184.216.36/one-off"


async def _attempt(
    pool: "asyncpg.Pool[Any]",
    delivery_id: uuid.UUID,
    n: int,
    *,
    status_code: int | None,
    error: str | None = None,
    latency_ms: float = 12.5,
) -> None:
    """An attempt as the dispatcher records it: the attempt's row, and the delivery's state."""
    await pool.execute(
        "INSERT INTO webhook_attempts (delivery_id, n, status_code, latency_ms, error)"
        " VALUES ($1, $2, $3, $4, $5)",
        delivery_id,
        n,
        status_code,
        latency_ms,
        error,
    )
    delivered = status_code is not None and 200 <= status_code < 300
    await pool.execute(
        """UPDATE webhook_deliveries
        SET attempts = $2, last_attempt_at = now(), last_status_code = $3, last_error = $4,
            status = CASE WHEN $5 THEN 'delivered' ELSE status END,
            delivered_at = CASE WHEN $5 THEN now() END,
            next_attempt_at = now() + interval '10 seconds'
        WHERE id = $1""",
        delivery_id,
        n,
        status_code,
        error,
        delivered,
    )


async def _ended(pool: "asyncpg.Pool[Any]", user: NewUser, text: str, **submit: Any) -> uuid.UUID:
    request_id = await submit_offer(pool, user.id, "demo", "echo", text, **submit)
    await record_outcomes(pool, ended=[Ended(request_id, 1, "succeeded", [text])])
    return request_id


async def test_deliveries_show_their_attempts_newest_first(
    api: Api, alice: NewUser, db_pool: "asyncpg.Pool[Any]"
) -> None:
    endpoint = await add_endpoint(db_pool, alice.id)
    first = await _ended(db_pool, alice, "a")
    second = await _ended(db_pool, alice, "b")
    older, newer = await deliveries(db_pool)
    assert (older["request_id"], newer["request_id"]) == (first, second)
    await _attempt(db_pool, older["id"], 1, status_code=None, error="timed out", latency_ms=10_000)
    await _attempt(db_pool, older["id"], 2, status_code=503, error="HTTP 503")
    await _attempt(db_pool, older["id"], 3, status_code=204)

    r = await api.client.get(f"/webhooks/{endpoint}/deliveries", headers=auth(alice))
    assert r.status_code == 200, r.text
    page = r.json()
    assert page["next_cursor"] is None
    assert [d["request_id"] for d in page["items"]] == [str(second), str(first)]
    pending, delivered = page["items"]
    assert pending["status"] == "pending"
    assert (pending["attempts"], pending["next_attempt_at"]) == ([], pending["next_attempt_at"])
    assert pending["next_attempt_at"] is not None
    assert pending["delivered_at"] is None
    assert delivered["id"] == str(older["id"])
    assert delivered["webhook_id"] == webhook_id(older["id"]) == f"msg_{older['id'].hex}"
    assert (delivered["event"], delivered["endpoint_id"], delivered["url"]) == (
        "request.succeeded",
        str(endpoint),
        None,
    )
    assert (delivered["status"], delivered["next_attempt_at"]) == ("delivered", None)
    assert delivered["delivered_at"] is not None
    assert (delivered["last_status_code"], delivered["last_error"]) == (204, None)
    assert [
        (a["n"], a["status_code"], a["error"], a["latency_ms"]) for a in delivered["attempts"]
    ] == [
        (1, None, "timed out", 10_000),
        (2, 503, "HTTP 503", 12.5),
        (3, 204, None, 12.5),
    ]
    assert all(a["at"] for a in delivered["attempts"])
    assert delivered["payload"] == orjson.loads(older["payload"])
    assert delivered["created_at"]

    # One by its id, or by its webhook-id.
    for key in (str(older["id"]), webhook_id(older["id"])):
        r = await api.client.get(f"/webhooks/{endpoint}/deliveries/{key}", headers=auth(alice))
        assert r.status_code == 200, r.text
        assert r.json() == delivered
        r = await api.client.get(f"/webhooks/deliveries/{key}", headers=auth(alice))
        assert r.json() == delivered

    # Filtered by status.
    r = await api.client.get(
        f"/webhooks/{endpoint}/deliveries", params={"status": "delivered"}, headers=auth(alice)
    )
    assert [d["id"] for d in r.json()["items"]] == [str(older["id"])]
    r = await api.client.get(
        f"/webhooks/{endpoint}/deliveries", params={"status": "sent"}, headers=auth(alice)
    )
    assert r.status_code == 422


async def test_pages_follow_the_cursor(
    api: Api, alice: NewUser, db_pool: "asyncpg.Pool[Any]"
) -> None:
    endpoint = await add_endpoint(db_pool, alice.id)
    for n in range(5):
        await _ended(db_pool, alice, str(n))
    queued = [r["id"] for r in await deliveries(db_pool)]
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        r = await api.client.get(
            f"/webhooks/{endpoint}/deliveries", params=params, headers=auth(alice)
        )
        assert r.status_code == 200, r.text
        seen += [d["id"] for d in r.json()["items"]]
        cursor = r.json()["next_cursor"]
        if cursor is None:
            break
    assert seen == [str(d) for d in reversed(queued)]
    r = await api.client.get(
        f"/webhooks/{endpoint}/deliveries", params={"cursor": "bogus"}, headers=auth(alice)
    )
    assert r.status_code == 400
    assert r.json()["code"] == "bad_request"


async def test_all_deliveries_of_the_user_with_filters(
    api: Api, alice: NewUser, db_pool: "asyncpg.Pool[Any]"
) -> None:
    one = await add_endpoint(db_pool, alice.id)
    two = await add_endpoint(db_pool, alice.id, events=["request.succeeded"])
    await add_one_off_secret(db_pool, alice.id)
    first = await _ended(db_pool, alice, "a", webhook_url=ONE_OFF)
    second = await _ended(db_pool, alice, "b")

    async def listed(**params: Any) -> set[tuple[str | None, str | None, str]]:
        r = await api.client.get("/webhooks/deliveries", params=params, headers=auth(alice))
        assert r.status_code == 200, r.text
        return {(d["endpoint_id"], d["url"], d["request_id"]) for d in r.json()["items"]}

    assert len(await listed()) == 5
    assert await listed(request_id=str(first)) == {
        (str(one), None, str(first)),
        (str(two), None, str(first)),
        (None, ONE_OFF, str(first)),
    }
    assert await listed(endpoint_id=str(two)) == {
        (str(two), None, str(first)),
        (str(two), None, str(second)),
    }
    assert await listed(status="failed") == set()
    r = await api.client.get(
        "/webhooks/deliveries", params={"request_id": "nope"}, headers=auth(alice)
    )
    assert r.status_code == 422


async def test_redelivery_sends_the_same_event_again(
    api: Api, alice: NewUser, db_pool: "asyncpg.Pool[Any]"
) -> None:
    endpoint = await add_endpoint(db_pool, alice.id)
    await _ended(db_pool, alice, "a")
    (row,) = await deliveries(db_pool)
    path = f"/webhooks/{endpoint}/deliveries/{row['id']}/redeliver"

    r = await api.client.post(path, headers=auth(alice))
    assert r.status_code == 409, r.text
    assert (r.json()["code"], r.json()["status"]) == ("conflict", "pending")

    # Given up after two attempts; redelivered: pending again, due now, same id and body.
    await _attempt(db_pool, row["id"], 1, status_code=500)
    await _attempt(db_pool, row["id"], 2, status_code=500)
    await db_pool.execute(
        "UPDATE webhook_deliveries SET status = 'failed', retry_from = now() - interval '2 days',"
        " next_attempt_at = now() + interval '1 day' WHERE id = $1",
        row["id"],
    )
    r = await api.client.post(path, headers=auth(alice))
    assert r.status_code == 202, r.text
    assert r.json() == {
        "id": str(row["id"]),
        "webhook_id": webhook_id(row["id"]),
        "status": "pending",
    }
    again = await db_pool.fetchrow(
        "SELECT *, next_attempt_at <= now() AS due, retry_from > now() - interval '1 minute'"
        " AS fresh FROM webhook_deliveries WHERE id = $1",
        row["id"],
    )
    assert again is not None
    assert (again["status"], again["due"], again["fresh"]) == ("pending", True, True)
    assert again["payload"] == row["payload"]
    assert len(await deliveries(db_pool)) == 1  # no new delivery: the same one again
    listed = await api.client.get(
        f"/webhooks/{endpoint}/deliveries/{row['id']}", headers=auth(alice)
    )
    assert [a["n"] for a in listed.json()["attempts"]] == [1, 2]  # its history stays

    # Pending again: a second redelivery is refused, by either path.
    assert (await api.client.post(path, headers=auth(alice))).status_code == 409
    r = await api.client.post(
        f"/webhooks/deliveries/{webhook_id(row['id'])}/redeliver", headers=auth(alice)
    )
    assert r.status_code == 409


async def test_a_one_off_delivery_is_redelivered_by_the_users_path(
    api: Api, alice: NewUser, db_pool: "asyncpg.Pool[Any]"
) -> None:
    await add_one_off_secret(db_pool, alice.id)
    await _ended(db_pool, alice, "a", webhook_url=ONE_OFF)
    (row,) = await deliveries(db_pool)
    await db_pool.execute(
        "UPDATE webhook_deliveries SET status = 'delivered', delivered_at = now() WHERE id = $1",
        row["id"],
    )
    r = await api.client.post(f"/webhooks/deliveries/{row['id']}/redeliver", headers=auth(alice))
    assert r.status_code == 202, r.text
    status = await db_pool.fetchval(
        "SELECT status FROM webhook_deliveries WHERE id = $1", row["id"]
    )
    assert status == "pending"
    r = await api.client.post(f"/webhooks/deliveries/{uuid.uuid4()}/redeliver", headers=auth(alice))
    assert r.status_code == 404
    r = await api.client.post("/webhooks/deliveries/msg_nothex/redeliver", headers=auth(alice))
    assert r.status_code == 422


async def test_a_delivery_of_another_endpoint_is_not_found_under_this_one(
    api: Api, alice: NewUser, db_pool: "asyncpg.Pool[Any]"
) -> None:
    one = await add_endpoint(db_pool, alice.id)
    two = await add_endpoint(db_pool, alice.id, events=["request.failed"])
    await _ended(db_pool, alice, "a")
    (row,) = await deliveries(db_pool)
    assert row["endpoint_id"] == one
    r = await api.client.get(f"/webhooks/{two}/deliveries/{row['id']}", headers=auth(alice))
    assert r.status_code == 404
    r = await api.client.post(
        f"/webhooks/{two}/deliveries/{row['id']}/redeliver", headers=auth(alice)
    )
    assert r.status_code == 404


async def test_ping_queues_a_test_event_even_to_a_disabled_endpoint(
    api: Api, alice: NewUser, db_pool: "asyncpg.Pool[Any]"
) -> None:
    endpoint = await add_endpoint(db_pool, alice.id, enabled=False)
    r = await api.client.post(f"/webhooks/{endpoint}/ping", headers=auth(alice))
    assert r.status_code == 202, r.text
    delivery_id = uuid.UUID(r.json()["id"])
    assert r.json()["webhook_id"] == webhook_id(delivery_id)
    (row,) = await deliveries(db_pool)
    assert (row["id"], row["endpoint_id"], row["event"], row["request_id"]) == (
        delivery_id,
        endpoint,
        "webhook.ping",
        None,
    )
    payload = orjson.loads(row["payload"])
    assert (payload["id"], payload["type"], payload["object"]) == (
        webhook_id(delivery_id),
        "webhook.ping",
        "event",
    )
    assert payload["data"] == {"endpoint": str(endpoint)}
    listed = await api.client.get(f"/webhooks/{endpoint}/deliveries", headers=auth(alice))
    assert [d["event"] for d in listed.json()["items"]] == ["webhook.ping"]
    assert listed.json()["items"][0]["request_id"] is None

    r = await api.client.post(f"/webhooks/{uuid.uuid4()}/ping", headers=auth(alice))
    assert r.status_code == 404
    assert len(await deliveries(db_pool)) == 1
