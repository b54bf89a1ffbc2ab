"""Metrics across the real processes: ``relai-api --workers 2`` serves, on its operator port,
the sum of both processes' counts (multiprocess mode), whichever process answered the requests;
its public port serves no metrics."""

import asyncio

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import Stack

pytestmark = pytest.mark.e2e

SUBMIT_ROUTE = "/svc/{service_name}/{action}"


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def _scrape(stack: Stack) -> Samples:
    async with httpx.AsyncClient(base_url=stack.metrics_url, timeout=10) as metrics:
        r = await metrics.get("/metrics")
    assert r.status_code == 200
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(r.text)
        for sample in family.samples
    }


async def test_metrics_count_every_request_whichever_api_process_answers(
    stack: Stack, client: httpx.AsyncClient
) -> None:
    n = 12
    prices = set()
    for i in range(n):
        r = await client.post("/svc/demo/echo", json={"text": f"counted {i}"})
        assert r.status_code == 202, r.text
        prices.add(r.json()["price"])
    (price,) = prices
    async with asyncio.timeout(20):
        while True:
            page = (await client.get("/svc/requests", params={"limit": 50})).json()
            if sum(item["status"] == "succeeded" for item in page["items"]) == n:
                break
            await asyncio.sleep(0.1)

    expected = {
        ("relai_submissions_total", frozenset({("outcome", "accepted")})): n,
        ("relai_requests_total", frozenset({("offer", "demo/echo"), ("handler", "echo.text")})): n,
        (
            "relai_credits_reserved_total",
            frozenset({("offer", "demo/echo"), ("handler", "echo.text")}),
        ): n * price,
        (
            "relai_http_requests_total",
            frozenset({("method", "POST"), ("route", SUBMIT_ROUTE), ("status", "202")}),
        ): n,
        (
            "relai_http_request_duration_seconds_count",
            frozenset({("method", "POST"), ("route", SUBMIT_ROUTE)}),
        ): n,
        ("relai_outbox_published_total", frozenset()): n,
        ("relai_relay_lag_seconds_count", frozenset()): n,
        ("relai_hop_seconds_count", frozenset({("hop", "commit")})): n,
        # Each request's two results entries (started, then succeeded).
        ("relai_hop_seconds_count", frozenset({("hop", "record")})): 2 * n,
        ("relai_results_recorded_total", frozenset({("status", "succeeded")})): n,
        ("relai_credits_settled_total", frozenset()): n * price,
    }
    # Two processes served the requests: every scrape sees both processes' counts.
    for _ in range(3):
        samples = await _scrape(stack)
        assert {key: samples.get(key) for key in expected} == expected
    assert (await client.get("/metrics")).status_code == 404
