"""Per-token prices over HTTP, run by a real worker: ``POST /svc`` reserves the most a request
can cost, its success settles what its reported usage costs and releases the rest, in the
statement that records it; a short balance is a 402 naming that most; a cancel after output
streamed is charged its input only."""

import asyncio
import time
import uuid
from typing import Any

import asyncpg
import pytest
from redis.asyncio import Redis

from libs.accounts import NewUser
from libs.catalog import CatalogSpec, apply_catalog
from libs.contracts import chunks_stream
from tests.integration.api.conftest import Api, auth
from tests.integration.api.money_helpers import ended, ledger_of, wallet_of
from tests.integration.worker.helpers import running
from tests.support import create_user

CATALOG = CatalogSpec.model_validate(
    {
        "handlers": [{"id": "echo.text", "credits": 3}, {"id": "echo.stream"}],
        "offers": [
            {
                "service": "tok",
                "action": "words",
                "price": 2,
                "prompt_template": "{text}",
                "handler": "echo.text",
                "input_price": 100,
                "output_price": 250,
                "max_output_tokens": 200,
            },
            {
                "service": "tok",
                "action": "stream",
                "price": 1,
                "prompt_template": "{text}",
                "handler": "echo.stream",
                "params": {"delay_ms": 100},
                "input_price": 100,
                "output_price": 100,
                "max_output_tokens": 100,
            },
        ],
    }
)


@pytest.fixture
async def token_offers(api: Api, db_pool: "asyncpg.Pool[Any]") -> None:
    async with db_pool.acquire() as conn:
        await apply_catalog(conn, CATALOG, prune=False)


@pytest.mark.usefixtures("token_offers")
async def test_a_request_reserves_its_most_and_settles_what_its_usage_cost(
    api: Api, alice: NewUser, db_pool: "asyncpg.Pool[Any]", redis_client: Redis
) -> None:
    # "one two three": 13 bytes, so at most 13 + 4 + 3 = 20 input tokens, and 200 output
    # tokens: 2 + ceil((20 * 100 + 200 * 250) / 1000) = 2 + 52.
    r = await api.client.post("/svc/tok/words", json={"text": "one two three"}, headers=auth(alice))
    assert r.status_code == 202, r.text
    request_id = r.json()["id"]
    assert r.json()["price"] == 54
    assert await ledger_of(db_pool, request_id) == {"reserve": 54}
    assert await wallet_of(db_pool, alice) == (46, 54)

    async with running(redis_client):
        body = await ended(api, alice, request_id)

    # echo.text reports a token a word: 3 in, 3 out: 2 + ceil((3 * 100 + 3 * 250) / 1000) = 4.
    assert (body["status"], body["usage"]) == ("succeeded", {"input_tokens": 3, "output_tokens": 3})
    assert await ledger_of(db_pool, request_id) == {"reserve": 54, "settle": 4, "release": 50}
    assert await wallet_of(db_pool, alice) == (96, 0)
    row = await db_pool.fetchrow(
        "SELECT pricing, cost FROM requests WHERE id = $1", uuid.UUID(request_id)
    )
    assert row is not None
    assert row["pricing"] == {"base": 2, "input_per_1k": "100", "output_per_1k": "250"}
    assert row["cost"] == 3  # echo.text's credits: what the request cost the operator


@pytest.mark.usefixtures("token_offers")
async def test_a_short_balance_is_402_naming_the_most_the_request_can_cost(
    api: Api, db_pool: "asyncpg.Pool[Any]"
) -> None:
    poor = await create_user(db_pool, name="poor", credits=53)
    r = await api.client.post("/svc/tok/words", json={"text": "one two three"}, headers=auth(poor))
    assert r.status_code == 402, r.text
    assert r.json()["price"] == 54
    assert "costs 54 credits" in r.json()["detail"]
    assert await wallet_of(db_pool, poor) == (53, 0)
    assert await db_pool.fetchval("SELECT count(*) FROM requests") == 0


@pytest.mark.usefixtures("token_offers")
async def test_a_cancel_after_output_streamed_charges_the_input_only(
    api: Api, alice: NewUser, db_pool: "asyncpg.Pool[Any]", redis_client: Redis
) -> None:
    # 21 words in 73 bytes: at most 80 input tokens. Reserved: 1 + ceil((80 * 100 + 100 * 100)
    # / 1000) = 19; charged on a cancel: 1 + ceil(80 * 100 / 1000) = 9, and 10 refunded.
    words = " ".join(f"w{n}" for n in range(21))
    async with running(redis_client) as runner:
        await asyncio.wait_for(runner.cancels.subscribed.wait(), 5)
        r = await api.client.post("/svc/tok/stream", json={"text": words}, headers=auth(alice))
        assert r.status_code == 202, r.text
        request_id = r.json()["id"]
        assert r.json()["price"] == 19
        deadline = time.monotonic() + 10
        while not await redis_client.xlen(chunks_stream(request_id)):
            assert time.monotonic() < deadline, "no chunk was streamed"
            await asyncio.sleep(0.05)
        cancelled = await api.client.post(f"/svc/request/{request_id}/cancel", headers=auth(alice))
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["refunded"] == 10
    assert await ledger_of(db_pool, request_id) == {"reserve": 19, "settle": 9, "refund": 10}
    assert await wallet_of(db_pool, alice) == (91, 0)
    assert (await ended(api, alice, request_id))["status"] == "cancelled"


@pytest.mark.usefixtures("token_offers")
async def test_a_cancel_before_output_refunds_everything(
    api: Api, alice: NewUser, db_pool: "asyncpg.Pool[Any]"
) -> None:
    r = await api.client.post("/svc/tok/words", json={"text": "one two three"}, headers=auth(alice))
    request_id = r.json()["id"]
    cancelled = await api.client.post(f"/svc/request/{request_id}/cancel", headers=auth(alice))
    assert cancelled.json()["refunded"] == 54
    assert await ledger_of(db_pool, request_id) == {"reserve": 54, "refund": 54}
    assert await wallet_of(db_pool, alice) == (100, 0)
