"""An endpoint's health: failing since its first failure, healthy again on a 2xx, disabled after
``RELAI_WEBHOOK_DISABLE_AFTER_S`` of failing or at once on 410 Gone, its pending deliveries
failed then."""

import asyncio
from typing import Any

import asyncpg
from aiohttp import web
from prometheus_client import REGISTRY

from libs.accounts import NewUser
from tests.integration.dispatcher.helpers import (
    all_settled,
    create_endpoint,
    deliveries,
    dispatching,
    queue,
    settings_for,
    wait_for,
)
from tests.integration.dispatcher.receiver import Received, Receiver, verify
from tests.support import ServerUrls


def disabled_total() -> float:
    return REGISTRY.get_sample_value("relai_webhook_endpoints_disabled_total") or 0.0


async def endpoint_row(pool: "asyncpg.Pool[Any]", endpoint_id: Any) -> asyncpg.Record:
    row: asyncpg.Record | None = await pool.fetchrow(
        "SELECT * FROM webhook_endpoints WHERE id = $1", endpoint_id
    )
    assert row is not None
    return row


async def test_failing_since_is_set_on_failure_and_cleared_on_success(
    servers: ServerUrls, db_pool: "asyncpg.Pool[Any]", user: NewUser, receiver: Receiver
) -> None:
    endpoint = await create_endpoint(db_pool, user.id, receiver.url)
    receiver.secrets = [endpoint.secret]
    healthy = asyncio.Event()

    async def failing_until_healthy(_: Received) -> web.StreamResponse:
        return web.Response(status=200 if healthy.is_set() else 502)

    receiver.answer = failing_until_healthy
    async with dispatching(settings_for(servers)):
        await queue(db_pool, user.id)
        await wait_for(lambda: len(receiver.received) >= 3)
        first = (await endpoint_row(db_pool, endpoint.id))["failing_since"]
        await wait_for(lambda: len(receiver.received) >= 5)
        assert (await endpoint_row(db_pool, endpoint.id))["failing_since"] == first
        healthy.set()
        await wait_for(lambda: all_settled(db_pool, 1))

    assert first is not None
    row = await endpoint_row(db_pool, endpoint.id)
    assert (row["failing_since"], row["enabled"]) == (None, True)


async def test_an_endpoint_failing_past_the_window_is_disabled_and_its_pending_events_failed(
    servers: ServerUrls, db_pool: "asyncpg.Pool[Any]", user: NewUser, receiver: Receiver
) -> None:
    endpoint = await create_endpoint(db_pool, user.id, receiver.url)
    other = await create_endpoint(db_pool, user.id, receiver.url)  # answers, keeps going
    receiver.secrets = [endpoint.secret, other.secret]

    async def by_secret(got: Received) -> web.StreamResponse:
        ok = verify(got.body, got.headers, other.secret).both
        return web.Response(status=200 if ok else 500)

    receiver.answer = by_secret
    before = disabled_total()
    settings = settings_for(servers, webhook_disable_after_s=1.0, webhook_retry_cap_s=0.2)
    async with dispatching(settings) as running:
        await queue(db_pool, user.id, 4)

        async def disabled() -> bool:
            return not (await endpoint_row(db_pool, endpoint.id))["enabled"]

        await wait_for(disabled)
        await wait_for(lambda: all_settled(db_pool, 8))
        calls = len(receiver.received)
        await queue(db_pool, user.id, 2)  # a disabled endpoint gets no new events
        await wait_for(lambda: all_settled(db_pool, 10))
        report = running.dispatcher.report

    row = await endpoint_row(db_pool, endpoint.id)
    assert row["failing_since"] is not None
    assert row["disabled_reason"].startswith("no successful delivery for ")
    assert "HTTP 500" in row["disabled_reason"]
    assert (await endpoint_row(db_pool, other.id))["enabled"]
    rows = list((await deliveries(db_pool)).values())
    mine = [r for r in rows if r["endpoint_id"] == endpoint.id]
    assert len(mine) == 4
    assert all(r["status"] == "failed" for r in mine)
    assert all(r["last_error"] == "endpoint disabled" for r in mine)
    assert all(r["status"] == "delivered" for r in rows if r["endpoint_id"] == other.id)
    assert len(receiver.received) == calls + 2
    assert disabled_total() - before == 1
    assert report.endpoints_disabled == 1
    assert report.failed == 4


async def test_410_gone_disables_at_once_and_fails_the_rest_unsent(
    servers: ServerUrls, db_pool: "asyncpg.Pool[Any]", user: NewUser, receiver: Receiver
) -> None:
    endpoint = await create_endpoint(db_pool, user.id, receiver.url)
    receiver.secrets = [endpoint.secret]

    async def gone(_: Received) -> web.StreamResponse:
        return web.Response(status=410)

    receiver.answer = gone
    async with dispatching(settings_for(servers, webhook_concurrency=1)):
        ids = await queue(db_pool, user.id, 3)
        await wait_for(lambda: all_settled(db_pool, 3))

    assert len(receiver.received) == 1
    row = await endpoint_row(db_pool, endpoint.id)
    assert (row["enabled"], row["disabled_reason"]) == (False, "the endpoint answered 410 Gone")
    rows = await deliveries(db_pool)
    sent = rows[next(i for i in ids if rows[i]["attempts"] == 1)]
    assert (sent["status"], sent["last_status_code"]) == ("failed", 410)
    assert [rows[i]["attempts"] for i in ids].count(0) == 2
    assert all(rows[i]["status"] == "failed" for i in ids)
    assert all(rows[i]["last_error"] == "endpoint disabled" for i in ids)
