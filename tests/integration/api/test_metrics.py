"""The API's metrics, scraped from the operator port as ``relai-api`` serves it: route templates
as labels, the submission and relay counters, and a client that leaves counted as 499.

The metrics are process-wide (the API runs in this process), so every check compares a value
before and after, never an absolute one.
"""

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx
import orjson
import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis
from websockets.asyncio.client import connect

from libs.accounts import NewUser
from libs.telemetry import metrics_registry, serving_metrics
from tests.integration.api.conftest import Api, auth, free_port
from tests.integration.api.test_results import _consumer, _deliver, _result, _submit
from tests.integration.api.test_websocket import _report
from tests.support import create_user, load_demo_catalog

SUBMIT_ROUTE = "/svc/{service_name}/{action}"


@pytest.fixture(scope="module")
def metrics_url() -> Iterator[str]:
    """The operator port, served as ``relai-api`` serves it."""
    port = free_port()
    with serving_metrics(port, "127.0.0.1", service="api", registry=metrics_registry()):
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
async def metrics(metrics_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=metrics_url, timeout=10) as client:
        yield client


async def _scrape(
    metrics: httpx.AsyncClient,
) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    r = await metrics.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(r.text)
        for sample in family.samples
    }


def _value(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def test_submit_counts_by_route_template_and_outcome(
    api: Api, metrics: httpx.AsyncClient, alice: NewUser, db_pool: "asyncpg.Pool[Any]"
) -> None:
    broke = await create_user(db_pool, name="broke", credits=0)
    before = await _scrape(metrics)

    body = {"name": "Ada", "age": "36"}
    first = await api.client.post("/svc/demo/greet", json=body, headers=auth(alice))
    again = await api.client.post("/svc/demo/greet", json=body, headers=auth(alice))
    refused = await api.client.post("/svc/demo/greet", json=body, headers=auth(broke))
    assert (first.status_code, again.status_code, refused.status_code) == (202, 202, 402)
    assert again.json()["duplicate"] is True
    after = await _scrape(metrics)

    def delta(name: str, **labels: str) -> float:
        return _value(after, name, **labels) - _value(before, name, **labels)

    http = "relai_http_requests_total"
    assert delta(http, method="POST", route=SUBMIT_ROUTE, status="202") == 2
    assert delta(http, method="POST", route=SUBMIT_ROUTE, status="402") == 1
    assert (
        delta("relai_http_request_duration_seconds_count", method="POST", route=SUBMIT_ROUTE) == 3
    )
    assert not any(dict(labels).get("route", "").startswith("/svc/demo") for _, labels in after), (
        "a raw path leaked into a label"
    )
    assert delta("relai_submissions_total", outcome="accepted") == 1
    assert delta("relai_submissions_total", outcome="duplicate") == 1
    assert delta("relai_submissions_total", outcome="refused_credits") == 1

    published = before.get(("relai_outbox_published_total", frozenset()), 0.0)
    for _ in range(200):
        now = await _scrape(metrics)
        if now.get(("relai_outbox_published_total", frozenset()), 0.0) > published:
            break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError("the relay's publication was never counted")


async def test_unmatched_paths_share_one_label(api: Api, metrics: httpx.AsyncClient) -> None:
    before = await _scrape(metrics)
    for path in ("/nope/1", "/nope/2"):
        assert (await api.client.get(path)).status_code == 404
    after = await _scrape(metrics)
    key = ("relai_http_requests_total", "GET", "unmatched", "404")
    labels = frozenset(zip(("method", "route", "status"), key[1:], strict=True))
    assert after[(key[0], labels)] - before.get((key[0], labels), 0.0) == 2


async def test_metrics_are_not_on_the_public_port_nor_in_the_openapi_document(api: Api) -> None:
    assert (await api.client.get("/metrics")).status_code == 404
    document = (await api.client.get("/openapi.json")).json()
    assert "/metrics" not in document["paths"]


async def test_a_client_that_leaves_during_its_upload_counts_as_499_not_500(
    api: Api, metrics: httpx.AsyncClient, alice: NewUser, caplog: pytest.LogCaptureFixture
) -> None:
    """The client sends the headers and part of a submission's body, then closes the
    connection: the endpoint's read of the body fails (``ClientDisconnect``). That is no server
    error: no 5xx counted, nothing logged as an unhandled error."""
    before = await _scrape(metrics)
    address = urlsplit(api.url)
    _, writer = await asyncio.open_connection(address.hostname, address.port)
    head = (
        f"POST /svc/demo/echo HTTP/1.1\r\nhost: {address.netloc}\r\n"
        f"authorization: Bearer {alice.api_key}\r\ncontent-type: application/json\r\n"
        "content-length: 1000\r\n\r\n"
    )
    writer.write(head.encode() + b'{"text": "half a bo')
    await writer.drain()
    await asyncio.sleep(0.3)  # the endpoint is reading the body
    writer.close()
    await writer.wait_closed()

    key = ("relai_http_requests_total", "POST", SUBMIT_ROUTE)

    def count(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], status: str) -> float:
        return _value(samples, key[0], method=key[1], route=key[2], status=status)

    for _ in range(100):
        after = await _scrape(metrics)
        if count(after, "499") > count(before, "499"):
            break
        await asyncio.sleep(0.05)
    assert count(after, "499") - count(before, "499") == 1
    server_errors = {
        labels: value
        for (name, labels), value in after.items()
        if name == key[0] and dict(labels)["status"].startswith("5")
    }
    assert server_errors == {
        labels: value
        for (name, labels), value in before.items()
        if name == key[0] and dict(labels)["status"].startswith("5")
    }
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


async def test_results_recorded_are_counted_by_status(
    db_pool: "asyncpg.Pool[Any]", redis_client: Redis
) -> None:
    await load_demo_catalog(db_pool)
    user = await create_user(db_pool, name="dora", credits=100)
    ok, bad = await _submit(db_pool, user, "a"), await _submit(db_pool, user, "b")
    consumer = _consumer(db_pool, redis_client)

    def recorded(status: str) -> float:
        return REGISTRY.get_sample_value("relai_results_recorded_total", {"status": status}) or 0.0

    before = {s: recorded(s) for s in ("running", "succeeded", "failed")}
    await _deliver(redis_client, consumer, "c1", [_result(ok, "started"), _result(bad, "started")])
    messages = [_result(ok, "succeeded", results=["a"]), _result(bad, "failed", error="no")]
    await _deliver(redis_client, consumer, "c1", messages)
    await _deliver(redis_client, consumer, "c1", messages)  # a second delivery changes nothing
    assert {s: recorded(s) - before[s] for s in before} == {
        "running": 2,
        "succeeded": 1,
        "failed": 1,
    }


async def test_a_requests_hops_in_the_api_are_timed(
    api: Api, metrics: httpx.AsyncClient, db_pool: "asyncpg.Pool[Any]", redis_client: Redis
) -> None:
    """``commit`` for its submission, ``record`` for each result entry (Redis's time in its id),
    ``push`` for each state change sent on its WebSocket."""
    await load_demo_catalog(db_pool)
    user = await create_user(db_pool, name="hops", credits=10)
    before = await _scrape(metrics)

    r = await api.client.post("/svc/demo/echo", json={"text": "hop"}, headers=auth(user))
    assert r.status_code == 202, r.text
    request_id = r.json()["id"]
    async with connect(
        f"{api.ws_url}/ws/requests/{request_id}", additional_headers=auth(user)
    ) as ws:
        assert orjson.loads(await asyncio.wait_for(ws.recv(), 5))["status"] == "pending"
        await _report(redis_client, request_id, "started")
        assert orjson.loads(await asyncio.wait_for(ws.recv(), 5))["status"] == "running"
        await _report(redis_client, request_id, "succeeded", results=["hop"])
        assert orjson.loads(await asyncio.wait_for(ws.recv(), 5))["status"] == "succeeded"
    after = await _scrape(metrics)

    def added(hop: str) -> float:
        name = "relai_hop_seconds_count"
        return _value(after, name, hop=hop) - _value(before, name, hop=hop)

    assert {hop: added(hop) for hop in ("commit", "record", "push")} == {
        "commit": 1,
        "record": 2,
        "push": 2,
    }
