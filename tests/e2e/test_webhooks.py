"""Completion webhooks across the real processes: requests submitted over HTTP end, their events
reach a receiver that verifies them, and a dispatcher killed (-9) while the receiver holds its
requests open loses none of them: its successor sends each again, under the same id."""

import asyncio
from collections import Counter, defaultdict
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from libs.contracts.webhooks import webhook_id
from tests.e2e.conftest import Stack
from tests.integration.dispatcher.helpers import create_endpoint, wait_for
from tests.integration.dispatcher.receiver import Received, Receiver

pytestmark = pytest.mark.e2e

EVENTS = 20
LEASE_S = 6.0


@pytest.fixture
def stack_env(stack_env: dict[str, str]) -> dict[str, str]:
    """The receiver on this host allowed; a lease of seconds, so that a dead dispatcher's
    deliveries are taken over within the test."""
    return {
        **stack_env,
        "RELAI_SSRF_ALLOW": '["127.0.0.1"]',
        "RELAI_WEBHOOK_TIMEOUT_S": "5",
        "RELAI_WEBHOOK_LEASE_S": str(LEASE_S),
        "RELAI_WEBHOOK_RETRY_BASE_S": "0.2",
        "RELAI_WEBHOOK_RETRY_CAP_S": "1",
        "RELAI_DISPATCHER_POLL_S": "0.5",
    }


async def delivered_total(stack: Stack) -> float:
    async with httpx.AsyncClient(timeout=5) as client:
        text = (await client.get(f"{stack.dispatcher_metrics_url}/metrics")).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "relai_webhook_deliveries_total":
                if sample.labels == {"outcome": "delivered"}:
                    return sample.value
    raise AssertionError("no relai_webhook_deliveries_total{outcome=delivered}")


async def test_a_dispatcher_killed_mid_flight_loses_no_event(
    stack: Stack, client: httpx.AsyncClient, db_pool: "asyncpg.Pool[Any]"
) -> None:
    receiver = Receiver()
    endpoint = await create_endpoint(
        db_pool, stack.user.id, receiver.url, events=["request.succeeded"]
    )
    receiver.secrets = [endpoint.secret]
    released = asyncio.Event()

    async def hold_until_released(_: Received) -> web.StreamResponse:
        await released.wait()
        return web.Response(status=200)

    receiver.answer = hold_until_released
    await receiver.start()
    try:
        submitted = set()
        for n in range(EVENTS):
            r = await client.post("/svc/demo/echo", json={"text": f"hook {n}"})
            assert r.status_code == 202, r.text
            submitted.add(r.json()["id"])
        # Every event in flight at once, each held open by the receiver: then the dispatcher dies.
        await wait_for(lambda: len(receiver.received) == EVENTS, timeout=60)
        stack.kill("relai-dispatcher")
        released.set()
        await stack.restart("relai-dispatcher", f"{stack.dispatcher_url}/health")

        async def all_delivered() -> bool:
            statuses = await db_pool.fetch("SELECT status FROM webhook_deliveries")
            return len(statuses) == EVENTS and all(s["status"] == "delivered" for s in statuses)

        await wait_for(all_delivered, timeout=LEASE_S + 30)
        delivered_by_successor = await delivered_total(stack)
    finally:
        released.set()
        await receiver.stop()

    rows = await db_pool.fetch("SELECT id, payload, attempts FROM webhook_deliveries")
    ids = {webhook_id(row["id"]): row for row in rows}
    bodies: dict[str, set[bytes]] = defaultdict(set)
    for got in receiver.received:
        assert got.verified
        bodies[got.webhook_id].add(got.body)
    assert set(bodies) == set(ids)
    for wid, versions in bodies.items():
        assert versions == {ids[wid]["payload"].encode()}  # a duplicate is the same event
    requests = {orjson.loads(next(iter(v)))["data"]["id"] for v in bodies.values()}
    assert requests == submitted
    # Each was received twice: held by the dead dispatcher, sent again by its successor once
    # the lease ran out (the first attempt, cut short, left no record).
    assert Counter(receiver.ids()) == dict.fromkeys(ids, 2)
    assert {row["attempts"] for row in rows} == {2}
    attempts = await db_pool.fetch("SELECT delivery_id, n, status_code FROM webhook_attempts")
    assert sorted((a["n"], a["status_code"]) for a in attempts) == [(2, 200)] * EVENTS
    assert {a["delivery_id"] for a in attempts} == {row["id"] for row in rows}
    assert delivered_by_successor == EVENTS
