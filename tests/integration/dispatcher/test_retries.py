"""Deliveries that fail for a while: retried with the same id and body until they arrive, as
soon as a receiver's ``Retry-After`` allows, given up after ``RELAI_WEBHOOK_RETRY_FOR_S``."""

import asyncio
import time
from collections import defaultdict
from typing import Any

import asyncpg
from aiohttp import web

from libs.accounts import NewUser
from libs.contracts.webhooks import webhook_id
from libs.outbox import redeliver
from tests.integration.dispatcher.helpers import (
    all_settled,
    attempts,
    create_endpoint,
    deliveries,
    dispatching,
    queue,
    settings_for,
    wait_for,
)
from tests.integration.dispatcher.receiver import Received, Receiver
from tests.support import ServerUrls


async def test_a_receiver_down_then_back_gets_every_event_under_one_id_each(
    servers: ServerUrls, db_pool: "asyncpg.Pool[Any]", user: NewUser
) -> None:
    receiver = Receiver()  # not listening yet: connections are refused
    endpoint = await create_endpoint(db_pool, user.id, receiver.url)
    receiver.secrets = [endpoint.secret]
    back = asyncio.Event()

    async def unavailable_until_back(_: Received) -> web.StreamResponse:
        if back.is_set():
            return web.Response(status=204)
        return web.Response(status=503)

    receiver.answer = unavailable_until_back
    async with dispatching(settings_for(servers)) as running:
        ids = await queue(db_pool, user.id, 10)

        async def refused_twice_each() -> bool:
            # The recorded attempts, not the row's counter: that counts an attempt when it is
            # claimed, before it is sent, so it may still reach the receiver once it listens.
            refused = await db_pool.fetchval(
                "SELECT count(*) FROM (SELECT delivery_id FROM webhook_attempts"
                " WHERE status_code IS NULL GROUP BY delivery_id HAVING count(*) >= 2) r"
            )
            return bool(refused == len(ids))

        await wait_for(refused_twice_each)
        await receiver.start()
        try:
            await wait_for(lambda: len(set(receiver.ids())) == 10)
            await asyncio.sleep(0.5)  # a few rounds of 503
            back.set()
            await wait_for(lambda: all_settled(db_pool, 10))
        finally:
            await receiver.stop()
        report = running.dispatcher.report

    bodies: dict[str, set[bytes]] = defaultdict(set)
    for got in receiver.received:
        assert got.verified
        bodies[got.webhook_id].add(got.body)
    assert set(bodies) == {webhook_id(i) for i in ids}
    assert all(len(versions) == 1 for versions in bodies.values())
    assert max(receiver.max_parallel.values()) == 1
    rows = await deliveries(db_pool)
    codes = []
    for delivery_id in ids:
        row = rows[delivery_id]
        assert row["status"] == "delivered"
        assert list(bodies[webhook_id(delivery_id)]) == [row["payload"].encode()]
        tries = await attempts(db_pool, delivery_id)
        assert [t["n"] for t in tries] == list(range(1, row["attempts"] + 1))
        assert "ConnectError" in tries[0]["error"]
        assert tries[0]["status_code"] is None
        assert tries[-1]["status_code"] == 204
        assert tries[-1]["error"] is None
        assert [t["status_code"] for t in tries[:-1]].count(None) >= 2
        codes += [t["status_code"] for t in tries]
    assert 503 in codes
    assert report.retried == len(codes) - 10
    assert report.delivered == 10


async def test_retry_after_is_honoured(
    servers: ServerUrls, db_pool: "asyncpg.Pool[Any]", user: NewUser, receiver: Receiver
) -> None:
    endpoint = await create_endpoint(db_pool, user.id, receiver.url)
    receiver.secrets = [endpoint.secret]

    async def busy_once(got: Received) -> web.StreamResponse:
        if len(receiver.received) == 1:
            return web.Response(status=429, headers={"Retry-After": "2"})
        return web.Response(status=200)

    receiver.answer = busy_once
    # A long poll: the retry is on time because the dispatcher waits for it, not for a poll.
    settings = settings_for(servers, webhook_retry_cap_s=10.0, dispatcher_poll_s=30.0)
    async with dispatching(settings):
        (delivery_id,) = await queue(db_pool, user.id)
        await wait_for(lambda: all_settled(db_pool, 1))

    first, second = receiver.received
    assert 1.9 <= second.at - first.at < 2.5  # not the 0.1 s the schedule would have waited
    assert first.body == second.body
    assert first.webhook_id == second.webhook_id
    tries = await attempts(db_pool, delivery_id)
    assert [(t["status_code"], t["error"]) for t in tries] == [
        (429, "HTTP 429 Too Many Requests"),
        (200, None),
    ]


async def test_a_delivery_is_given_up_after_retry_for_s(
    servers: ServerUrls, db_pool: "asyncpg.Pool[Any]", user: NewUser, receiver: Receiver
) -> None:
    endpoint = await create_endpoint(db_pool, user.id, receiver.url)
    receiver.secrets = [endpoint.secret]

    async def broken(_: Received) -> web.StreamResponse:
        return web.Response(status=500)

    receiver.answer = broken
    started = time.monotonic()
    async with dispatching(settings_for(servers, webhook_retry_for_s=1.5)):
        (delivery_id,) = await queue(db_pool, user.id)
        await wait_for(lambda: all_settled(db_pool, 1))
        elapsed = time.monotonic() - started
        calls = len(receiver.received)
        await asyncio.sleep(0.5)

    assert 1.0 < elapsed < 5.0
    assert len(receiver.received) == calls >= 3  # and none after it was given up
    row = (await deliveries(db_pool))[delivery_id]
    assert (row["status"], row["last_status_code"]) == ("failed", 500)
    assert row["last_error"] == "HTTP 500 Internal Server Error"
    assert row["attempts"] == calls == len(await attempts(db_pool, delivery_id))
    assert row["delivered_at"] is None
    assert row["locked_until"] is None
    enabled = await db_pool.fetchval(
        "SELECT enabled FROM webhook_endpoints WHERE id = $1", endpoint.id
    )
    assert enabled  # failing for 1.5 s is far from the disable window


async def test_a_redelivery_starts_the_backoff_over(
    servers: ServerUrls, db_pool: "asyncpg.Pool[Any]", user: NewUser, receiver: Receiver
) -> None:
    """Given up after ten attempts an hour ago, then redelivered: its next failure waits the
    schedule's first step, not its tenth."""
    endpoint = await create_endpoint(db_pool, user.id, receiver.url)
    receiver.secrets = [endpoint.secret]

    async def broken(_: Received) -> web.StreamResponse:
        return web.Response(status=500)

    receiver.answer = broken
    (delivery_id,) = await queue(db_pool, user.id)
    await db_pool.execute(
        """WITH given_up AS (
               UPDATE webhook_deliveries SET status = 'failed', attempts = 10,
                   retry_from = now() - interval '1 hour' WHERE id = $1
           )
           INSERT INTO webhook_attempts (delivery_id, n, at, status_code, latency_ms, error)
           SELECT $1, n, now() - interval '1 hour', 500, 5, 'HTTP 500'
           FROM generate_series(1, 10) n""",
        delivery_id,
    )
    async with db_pool.acquire() as conn:
        assert await redeliver(conn, user_id=user.id, delivery_id=delivery_id)
    settings = settings_for(servers, webhook_retry_base_s=0.2, webhook_retry_cap_s=30.0)
    async with dispatching(settings):
        await wait_for(lambda: len(receiver.received) >= 2, timeout=10)

    first, second = receiver.received[:2]
    # The first step of the schedule (0.1 to 0.2 s), where the eleventh would be 15 to 30 s.
    assert second.at - first.at < 2.0
    assert [t["n"] for t in await attempts(db_pool, delivery_id)][10:12] == [11, 12]


async def test_a_slow_receiver_times_out_and_a_redirect_is_not_followed(
    servers: ServerUrls, db_pool: "asyncpg.Pool[Any]", user: NewUser, receiver: Receiver
) -> None:
    endpoint = await create_endpoint(db_pool, user.id, receiver.url)
    receiver.secrets = [endpoint.secret]

    async def slow_then_elsewhere(_: Received) -> web.StreamResponse:
        if len(receiver.received) == 1:
            await asyncio.sleep(3)
        if len(receiver.received) <= 2:
            return web.Response(status=307, headers={"Location": "http://127.0.0.1:9/hook"})
        return web.Response(status=200)

    receiver.answer = slow_then_elsewhere
    async with dispatching(settings_for(servers, webhook_timeout_s=0.5, webhook_lease_s=2.0)):
        (delivery_id,) = await queue(db_pool, user.id)
        await wait_for(lambda: all_settled(db_pool, 1))

    assert len(receiver.received) == 3
    timed_out, redirected, delivered = await attempts(db_pool, delivery_id)
    assert timed_out["error"] == "no answer within 0.5s"
    assert timed_out["status_code"] is None
    assert 0.5 <= timed_out["latency_ms"] / 1000 < 1.5
    assert "307" in redirected["error"]
    assert "not followed" in redirected["error"]
    assert delivered["status_code"] == 200
