"""Cancel: a queued job never runs, a running one is abandoned, the reservation is refunded once,
and nothing that arrives later changes the outcome."""

import asyncio
import time
import uuid
from typing import Any

import asyncpg
import orjson
import pytest
from redis.asyncio import Redis
from websockets.asyncio.client import connect

from libs.accounts import NewUser
from libs.catalog import CatalogSpec, apply_catalog
from libs.contracts import RESULTS_STREAM, TASKS_STREAM, ResultMessage, chunks_stream
from libs.streams import encode
from tests.deals_support import load_deals_catalog
from tests.integration.api.conftest import Api, auth
from tests.integration.worker.helpers import pending, running

LONG = CatalogSpec.model_validate(
    {
        "handlers": [{"id": "echo.delay"}, {"id": "echo.stream"}],
        "offers": [
            {
                "service": "demo",
                "action": "long",
                "price": 6,
                "prompt_template": "{text}",
                "handler": "echo.delay",
                "params": {"delay_ms": 20_000},
            },
            {
                "service": "demo",
                "action": "stream",
                "price": 4,
                "prompt_template": "{text}",
                "handler": "echo.stream",
                "params": {"delay_ms": 100},
            },
        ],
        "deals": [{"slug": "duo", "offers": [{"offer": "demo/stream"}, {"offer": "demo/long"}]}],
    }
)


@pytest.fixture
async def long_offer(api: Api, db_pool: "asyncpg.Pool[Any]") -> None:
    async with db_pool.acquire() as conn:
        await apply_catalog(conn, LONG)


async def _submit(api: Api, user: NewUser, action: str = "echo", text: str = "x") -> str:
    r = await api.client.post(f"/svc/demo/{action}", json={"text": text}, headers=auth(user))
    assert r.status_code == 202, r.text
    return str(r.json()["id"])


async def _status(api: Api, user: NewUser, request_id: str) -> dict[str, Any]:
    r = await api.client.get(f"/svc/request/{request_id}", headers=auth(user))
    assert r.status_code == 200
    return r.json()  # type: ignore[no-any-return]


async def _wait_status(api: Api, user: NewUser, request_id: str, status: str) -> None:
    deadline = time.monotonic() + 10
    while (await _status(api, user, request_id))["status"] != status:
        assert time.monotonic() < deadline, f"never {status}"
        await asyncio.sleep(0.05)


async def _until(check: Any, what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.05)


async def _money(pool: "asyncpg.Pool[Any]", user: NewUser) -> tuple[int, int, list[str]]:
    """Balance, reserved and the request ledger; asserts that the ledger explains both."""
    row = await pool.fetchrow("SELECT balance, reserved FROM users WHERE id = $1", user.id)
    ledger = await pool.fetch(
        "SELECT kind, amount FROM credit_ledger WHERE user_id = $1 ORDER BY id", user.id
    )
    assert row is not None
    total = {
        k: sum(e["amount"] for e in ledger if e["kind"] == k)
        for k in ("grant", "reserve", "settle", "release", "refund")
    }
    returned = total["release"] + total["refund"]
    assert row["balance"] == total["grant"] - total["reserve"] + returned
    assert row["reserved"] == total["reserve"] - total["settle"] - returned
    return row["balance"], row["reserved"], [e["kind"] for e in ledger if e["kind"] != "grant"]


async def _cancel(api: Api, user: NewUser, request_id: str) -> Any:
    return await api.client.post(f"/svc/request/{request_id}/cancel", headers=auth(user))


async def test_cancel_queued_the_job_never_runs_and_is_refunded(
    api: Api, alice: NewUser, db_pool: "asyncpg.Pool[Any]", redis_client: Redis
) -> None:
    request_id = await _submit(api, alice)
    await _until(lambda: redis_client.xlen(TASKS_STREAM), "the task was never published")

    r = await _cancel(api, alice, request_id)
    assert (r.status_code, r.json()) == (
        200,
        {"id": request_id, "status": "cancelled", "refunded": 2},
    )
    assert await _money(db_pool, alice) == (100, 0, ["reserve", "refund"])

    async with running(redis_client):
        # The worker takes the task, sees the cancellation and acks it without running it.
        async def consumed() -> bool:
            return await redis_client.xlen(TASKS_STREAM) == 0 and await pending(redis_client) == 0

        await _until(consumed, "the cancelled task was never taken")
    view = await _status(api, alice, request_id)
    assert (view["status"], view["results"], view["started_at"]) == ("cancelled", None, None)
    assert view["error"] == "cancelled by the user"
    assert await _money(db_pool, alice) == (100, 0, ["reserve", "refund"])


@pytest.mark.usefixtures("long_offer")
async def test_cancel_running_abandons_the_handler_and_tells_watchers(
    api: Api, alice: NewUser, db_pool: "asyncpg.Pool[Any]", redis_client: Redis
) -> None:
    async with running(redis_client) as runner:
        await asyncio.wait_for(runner.cancels.subscribed.wait(), 5)
        request_id = await _submit(api, alice, "long")
        await _wait_status(api, alice, request_id, "running")
        url = f"{api.ws_url}/ws/requests/{request_id}"
        async with connect(url, additional_headers=auth(alice)) as ws:
            assert orjson.loads(await ws.recv())["status"] == "running"
            started = time.monotonic()
            r = await _cancel(api, alice, request_id)
            assert r.status_code == 200
            final = orjson.loads(await asyncio.wait_for(ws.recv(), 5))
            assert (final["status"], final["error"]) == ("cancelled", "cancelled by the user")

        async def abandoned() -> bool:
            return runner.in_flight == 0 and await pending(redis_client) == 0

        await _until(abandoned, "the handler call was not abandoned", timeout=5)
        assert time.monotonic() - started < 5  # far sooner than the 20 s the handler takes
    assert await _money(db_pool, alice) == (100, 0, ["reserve", "refund"])
    assert (await _status(api, alice, request_id))["status"] == "cancelled"


@pytest.mark.usefixtures("long_offer")
async def test_cancelling_a_stream_after_its_output_began_does_not_refund_it(
    api: Api, alice: NewUser, db_pool: "asyncpg.Pool[Any]", redis_client: Redis
) -> None:
    """The attack: read most of a streamed answer, cancel, get the price back, and replay the
    chunks later for free. Once a chunk is out, the output is delivered: the cancel stops the
    job but charges the request in full."""
    async with running(redis_client) as runner:
        await asyncio.wait_for(runner.cancels.subscribed.wait(), 5)
        words = " ".join(f"w{n}" for n in range(21))
        request_id = await _submit(api, alice, "stream", words)

        async def streaming() -> bool:
            return bool(await redis_client.xlen(chunks_stream(request_id)))

        await _until(streaming, "no chunk was streamed")
        r = await _cancel(api, alice, request_id)
        assert r.status_code == 200, r.text
        assert r.json()["refunded"] == 0
        assert (await _cancel(api, alice, request_id)).json()["refunded"] == 0
    assert await _money(db_pool, alice) == (96, 0, ["reserve", "settle"])
    assert (await _status(api, alice, request_id))["status"] == "cancelled"


@pytest.mark.usefixtures("long_offer")
async def test_cancelling_a_deal_charges_the_steps_that_streamed_and_refunds_the_rest(
    api: Api, alice: NewUser, db_pool: "asyncpg.Pool[Any]", redis_client: Redis
) -> None:
    """The same attack on a deal: a step whose output began to stream is charged, the step
    that has shown nothing is refunded."""
    async with running(redis_client) as runner:
        await asyncio.wait_for(runner.cancels.subscribed.wait(), 5)
        words = " ".join(f"w{n}" for n in range(21))
        r = await api.client.post(
            "/deal/duo", json={"inputs": {"text": words}}, headers=auth(alice)
        )
        assert r.status_code == 202, r.text
        request_id = r.json()["id"]
        assert [s["price"] for s in r.json()["steps"]] == [4, 6]

        async def streaming() -> bool:
            return bool(await redis_client.xlen(chunks_stream(request_id)))

        await _until(streaming, "no chunk was streamed")
        cancelled = await _cancel(api, alice, request_id)
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["refunded"] == 6
        assert (await _cancel(api, alice, request_id)).json()["refunded"] == 6
    balance, reserved, kinds = await _money(db_pool, alice)
    assert (balance, reserved) == (96, 0)
    assert sorted(kinds) == ["refund", "reserve", "settle"]  # the cancel writes both at once
    view = await _status(api, alice, request_id)
    assert [s["status"] for s in view["steps"]] == ["cancelled", "cancelled"]


async def test_cancel_twice_gives_the_same_answer_and_refunds_once(
    api: Api, alice: NewUser, db_pool: "asyncpg.Pool[Any]"
) -> None:
    request_id = await _submit(api, alice)
    first = await _cancel(api, alice, request_id)
    second = await _cancel(api, alice, request_id)
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    assert await _money(db_pool, alice) == (100, 0, ["reserve", "refund"])


async def test_cancel_finished_is_409_and_keeps_the_charge(
    api: Api, alice: NewUser, db_pool: "asyncpg.Pool[Any]", redis_client: Redis
) -> None:
    request_id = await _submit(api, alice)
    async with running(redis_client):
        await _wait_status(api, alice, request_id, "succeeded")
    r = await _cancel(api, alice, request_id)
    assert r.status_code == 409
    assert r.json() == {
        "detail": "the request has already succeeded",
        "code": "conflict",
        "status": "succeeded",
    }
    assert await _money(db_pool, alice) == (98, 0, ["reserve", "settle"])


async def test_a_late_result_for_a_cancelled_request_changes_nothing(
    api: Api, alice: NewUser, db_pool: "asyncpg.Pool[Any]", redis_client: Redis
) -> None:
    request_id = await _submit(api, alice)
    assert (await _cancel(api, alice, request_id)).status_code == 200
    for kind, extra in (("started", {}), ("succeeded", {"results": ["late"]})):
        message = ResultMessage.model_validate(
            {"request_id": request_id, "attempt": 1, "kind": kind, "worker": "late", **extra}
        )
        await redis_client.xadd(RESULTS_STREAM, encode(message))

    async def recorded() -> bool:
        return await redis_client.xlen(RESULTS_STREAM) == 0

    await _until(recorded, "the results consumer never took the late results")
    view = await _status(api, alice, request_id)
    assert (view["status"], view["results"]) == ("cancelled", None)
    assert await _money(db_pool, alice) == (100, 0, ["reserve", "refund"])


async def test_another_users_request_is_404_like_a_missing_one(
    api: Api, alice: NewUser, bob: NewUser, db_pool: "asyncpg.Pool[Any]"
) -> None:
    request_id = await _submit(api, alice)
    theirs = await _cancel(api, bob, request_id)
    missing = await _cancel(api, bob, "5f0c7f3e-8a4b-4d1e-9a57-2c1e0d6b9a10")
    garbage = await _cancel(api, bob, "not-an-id")
    assert theirs.status_code == missing.status_code == garbage.status_code == 404
    assert theirs.json() == missing.json() == garbage.json()
    assert (await _status(api, alice, request_id))["status"] == "pending"
    assert await _money(db_pool, alice) == (98, 2, ["reserve"])


async def test_cancel_a_deal_midway_keeps_what_was_delivered_and_refunds_the_rest(
    api: Api, alice: NewUser, db_pool: "asyncpg.Pool[Any]", redis_client: Redis
) -> None:
    await load_deals_catalog(db_pool)
    r = await api.client.post("/deal/chain", json={"inputs": {"text": "hi"}}, headers=auth(alice))
    assert r.status_code == 202, r.text
    request_id = r.json()["id"]
    shares = [step["price"] for step in r.json()["steps"]]
    assert sum(shares) == 30

    async def result(step: int, kind: str, **extra: Any) -> None:
        message = ResultMessage.model_validate(
            {"request_id": request_id, "attempt": 1, "kind": kind, "worker": "w", "step": step}
            | extra
        )
        await redis_client.xadd(RESULTS_STREAM, encode(message))

        async def recorded() -> bool:
            return await redis_client.xlen(RESULTS_STREAM) == 0

        await _until(recorded, "the results consumer never took the step's result")

    # The first step delivered, the second queued.
    await result(0, "succeeded", results=["A[hi]"], usage={"output_tokens": 4})
    await _until(
        lambda: _step_statuses(db_pool, request_id, ["succeeded", "pending", "pending"]),
        "the first step never ended",
    )

    cancelled = await _cancel(api, alice, request_id)
    assert (cancelled.status_code, cancelled.json()) == (
        200,
        {"id": request_id, "status": "cancelled", "refunded": shares[1] + shares[2]},
    )
    await result(1, "succeeded", results=["late"])  # a late step result changes nothing
    again = await _cancel(api, alice, request_id)

    assert again.json() == cancelled.json()
    view = await _status(api, alice, request_id)
    assert (view["status"], view["error"]) == ("cancelled", "cancelled by the user")
    assert view["usage"] == {"output_tokens": 4}  # what the delivered step used
    assert [(s["status"], s["results"]) for s in view["steps"]] == [
        ("succeeded", ["A[hi]"]),
        ("cancelled", None),
        ("cancelled", None),
    ]
    assert await _money(db_pool, alice) == (
        100 - shares[0],
        0,
        ["reserve", "settle", "refund", "refund"],
    )


async def _step_statuses(pool: "asyncpg.Pool[Any]", request_id: str, expected: list[str]) -> bool:
    rows = await pool.fetch(
        "SELECT status FROM request_steps WHERE request_id = $1 ORDER BY idx", uuid.UUID(request_id)
    )
    return [r["status"] for r in rows] == expected
