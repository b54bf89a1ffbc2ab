"""One trace per request across the real processes, exported over OTLP by the API (two uvicorn
processes: relay, results consumer, WebSocket hub) and the workers to a local receiver."""

import asyncio
import random
from collections.abc import AsyncIterator, Callable

import httpx
import orjson
import pytest
from websockets.asyncio.client import connect

from tests.e2e.conftest import Stack
from tests.otlp import CollectedSpan, Receiver, otlp_receiver

pytestmark = pytest.mark.e2e

SUBMIT_ROUTE = "/svc/{service_name}/{action}"


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with otlp_receiver() as found:
        yield found


@pytest.fixture
def stack_env(stack_env: dict[str, str], receiver: Receiver) -> dict[str, str]:
    return {
        **stack_env,
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "50",
    }


def _one(spans: list[CollectedSpan], name: str) -> CollectedSpan:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, (name, [s.name for s in spans])
    return found[0]


def _complete(trace_id: str) -> Callable[[list[CollectedSpan]], bool]:
    expected = {
        "relai.submit",
        "relai.relay.publish",
        "relai.worker.job",
        "relai.handler",
        "relai.results.persist",
    }

    def done(spans: list[CollectedSpan]) -> bool:
        mine = [s for s in spans if s.trace_id == trace_id]
        pushed = {s.attributes.get("relai.status") for s in mine if s.name == "relai.ws.push"}
        return expected <= {s.name for s in mine} and "succeeded" in pushed

    return done


async def test_one_request_is_one_trace_across_processes(
    stack: Stack, client: httpx.AsyncClient, receiver: Receiver
) -> None:
    trace_id = f"{random.getrandbits(128):032x}"
    caller_span = f"{random.getrandbits(64):016x}"
    async with connect(f"{stack.ws_url}/ws", additional_headers=stack.headers) as ws:
        r = await client.post(
            "/svc/demo/echo",
            json={"text": "traced"},
            headers={"traceparent": f"00-{trace_id}-{caller_span}-01"},
        )
        assert r.status_code == 202, r.text
        request_id = r.json()["id"]
        async with asyncio.timeout(20):
            async for raw in ws:
                state = orjson.loads(raw)
                if state["id"] == request_id and state["status"] == "succeeded":
                    break
    await receiver.wait_for(_complete(trace_id), timeout=20)
    await asyncio.sleep(0.5)  # spans of the same moment exported by the other processes
    everything = list(receiver.spans)
    spans = [s for s in everything if s.trace_id == trace_id]
    by_id = {s.span_id: s for s in everything}

    server = next(s for s in spans if s.parent_id == caller_span)
    assert server.service == "api"
    assert server.name.startswith(f"POST {SUBMIT_ROUTE}")

    submit = _one(spans, "relai.submit")
    assert (submit.service, submit.parent_id) == ("api", server.span_id)
    assert submit.attributes["relai.request_id"] == request_id
    assert submit.attributes["relai.offer"] == "demo/echo"

    publish = _one(spans, "relai.relay.publish")
    assert (publish.service, publish.parent_id) == ("api", submit.span_id)
    (link,) = publish.links
    batch = by_id[link[1]]
    assert batch.name == "relai.relay.publish batch"
    assert (trace_id, submit.span_id) in batch.links

    job = _one(spans, "relai.worker.job")
    assert (job.service, job.parent_id) == ("worker", submit.span_id)
    assert job.attributes["relai.request_id"] == request_id

    handler = _one(spans, "relai.handler")
    assert (handler.service, handler.parent_id) == ("worker", job.span_id)
    assert handler.attributes["relai.handler"] == "echo.text"
    assert handler.attributes["relai.provider"] == "echo"

    persisted = [s for s in spans if s.name == "relai.results.persist"]
    assert {(s.service, s.parent_id) for s in persisted} == {("api", job.span_id)}
    for span in persisted:
        (link,) = span.links
        assert by_id[link[1]].name == "relai.results.persist batch"

    pushes = [s for s in spans if s.name == "relai.ws.push"]
    assert {(s.service, s.parent_id) for s in pushes} == {("api", submit.span_id)}
    # Watchers see running before succeeded even when both were written in one batch.
    assert {s.attributes["relai.status"] for s in pushes} == {"running", "succeeded"}

    assert {s.service for s in spans} == {"api", "worker"}
    # Database and Redis calls made for the request are spans of its trace too.
    # The request's own queries are spans of its trace; a batch's Redis work is in the batch's.
    assert any(s.attributes.get("db.system") == "postgresql" for s in spans)
    in_batch = [s for s in everything if s.parent_id == batch.span_id]
    assert [(s.name, s.attributes.get("db.system")) for s in in_batch] == [("XADD", "redis")]
