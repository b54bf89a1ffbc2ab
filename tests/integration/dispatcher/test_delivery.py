"""Deliveries that succeed: the stored payload, byte for byte, signed so that both receivers'
libraries accept it, on the first try; to an endpoint, to a one-off URL, a ping."""

import uuid
from typing import Any

import asyncpg
import orjson
from prometheus_client import REGISTRY

from libs.accounts import NewUser
from libs.contracts.webhooks import webhook_id
from libs.outbox import queue_ping
from libs.webhooks import new_secret
from tests.integration.dispatcher.helpers import (
    all_settled,
    attempts,
    create_endpoint,
    deliveries,
    dispatching,
    queue,
    queue_one_off,
    settings_for,
    wait_for,
)
from tests.integration.dispatcher.receiver import Receiver, verify
from tests.support import ServerUrls


def delivered_total() -> float:
    value = REGISTRY.get_sample_value("relai_webhook_deliveries_total", {"outcome": "delivered"})
    return value or 0.0


def attempts_timed() -> float:
    return REGISTRY.get_sample_value("relai_webhook_attempt_seconds_count") or 0.0


async def test_every_event_arrives_on_the_first_try_signed_and_byte_for_byte(
    servers: ServerUrls, db_pool: "asyncpg.Pool[Any]", user: NewUser, receiver: Receiver
) -> None:
    endpoint = await create_endpoint(db_pool, user.id, receiver.url)
    receiver.secrets = [endpoint.secret]
    before, timed = delivered_total(), attempts_timed()
    async with dispatching(settings_for(servers)) as running:
        ids = await queue(db_pool, user.id, 5)
        await wait_for(lambda: all_settled(db_pool, 5))
        health = (await running.client.get("/health")).json()

    assert len(receiver.received) == 5
    assert all(r.verified for r in receiver.received)
    assert sorted(receiver.ids()) == sorted(webhook_id(i) for i in ids)
    rows = await deliveries(db_pool)
    for got in receiver.received:
        row = rows[uuid.UUID(got.webhook_id.removeprefix("msg_"))]
        assert got.body == row["payload"].encode()
        assert got.headers["content-type"] == "application/json"
        assert got.headers["user-agent"].startswith("Relai-Webhooks/")
        assert len(got.headers["webhook-signature"].split()) == 1
        payload = orjson.loads(got.body)
        assert (payload["id"], payload["type"]) == (got.webhook_id, "request.succeeded")
        assert payload["data"]["id"] == str(row["request_id"])
    for row in rows.values():
        assert (row["status"], row["attempts"], row["last_status_code"]) == ("delivered", 1, 200)
        assert row["locked_until"] is None
        assert row["delivered_at"] is not None
        (attempt,) = await attempts(db_pool, row["id"])
        assert (attempt["n"], attempt["status_code"], attempt["error"]) == (1, 200, None)
        assert attempt["latency_ms"] > 0
    assert delivered_total() - before == 5
    assert attempts_timed() - timed == 5
    assert REGISTRY.get_sample_value("relai_webhook_in_flight") == 0
    assert health["status"] == "ok"
    assert health["dispatch"]["delivered"] == 5
    assert health["dispatch"]["listening"] is True
    assert health["backlog"] == {"pending": 0, "due": 0, "oldest_pending_age_seconds": None}


async def test_a_request_s_one_off_url_is_signed_with_its_owner_s_secret(
    servers: ServerUrls, db_pool: "asyncpg.Pool[Any]", user: NewUser, receiver: Receiver
) -> None:
    secret, old = new_secret(), new_secret()
    await db_pool.execute(
        """INSERT INTO webhook_secrets (user_id, secret, previous_secret, previous_until)
           VALUES ($1, $2, $3, now() + interval '1 hour')""",
        user.id,
        secret,
        old,
    )
    await queue_one_off(db_pool, user.id, receiver.url)
    receiver.secrets = [old]  # a receiver that has not yet learnt the new one
    async with dispatching(settings_for(servers)):
        await wait_for(lambda: all_settled(db_pool, 1))

    (got,) = receiver.received
    assert got.verified
    assert verify(got.body, got.headers, secret).both
    (row,) = (await deliveries(db_pool)).values()
    assert (row["endpoint_id"], row["url"], row["status"]) == (None, receiver.url, "delivered")


async def test_a_ping_goes_even_to_a_disabled_endpoint(
    servers: ServerUrls, db_pool: "asyncpg.Pool[Any]", user: NewUser, receiver: Receiver
) -> None:
    endpoint = await create_endpoint(db_pool, user.id, receiver.url, enabled=False)
    receiver.secrets = [endpoint.secret]
    async with db_pool.acquire() as conn:
        ping = await queue_ping(conn, user_id=user.id, endpoint_id=endpoint.id)
    assert ping is not None
    async with dispatching(settings_for(servers)):
        await wait_for(lambda: all_settled(db_pool, 1))

    (got,) = receiver.received
    assert got.verified
    assert got.webhook_id == webhook_id(ping)
    payload = orjson.loads(got.body)
    assert (payload["type"], payload["data"]) == ("webhook.ping", {"endpoint": str(endpoint.id)})
    assert (await deliveries(db_pool))[ping]["status"] == "delivered"


async def test_a_disabled_endpoint_s_events_fail_unsent(
    servers: ServerUrls, db_pool: "asyncpg.Pool[Any]", user: NewUser, receiver: Receiver
) -> None:
    """Queued while it was enabled, found disabled (by its owner) when due."""
    endpoint = await create_endpoint(db_pool, user.id, receiver.url)
    await queue(db_pool, user.id, 3)
    await db_pool.execute("UPDATE webhook_endpoints SET enabled = false WHERE id = $1", endpoint.id)
    async with dispatching(settings_for(servers)):
        await wait_for(lambda: all_settled(db_pool, 3))

    assert receiver.received == []
    for row in (await deliveries(db_pool)).values():
        assert (row["status"], row["last_error"], row["attempts"]) == (
            "failed",
            "endpoint disabled",
            0,
        )
