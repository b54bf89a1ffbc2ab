"""Priority tiers over HTTP: an offer sells tiers at a percentage of its prices, a submission
names one with ``Relai-Tier`` (or gets the offer's default) and reserves that tier's price, one
the offer does not sell is a 422 that writes nothing, and the request is billed at the tier it
was served at when that is cheaper, never at a dearer one."""

import uuid
from typing import Any

import asyncpg
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam
from pydantic import ValidationError
from redis.asyncio import Redis

from libs.accounts import NewUser
from libs.catalog import CatalogSpec, OfferSpec, apply_catalog
from libs.outcomes import Ended, Started, record_outcomes
from tests.integration.api.conftest import Api, auth
from tests.integration.api.money_helpers import ended, ledger_of, wallet_of
from tests.integration.worker.helpers import running

CATALOG = CatalogSpec.model_validate(
    {
        "handlers": [{"id": "echo.text"}],
        "offers": [
            {
                "service": "tier",
                "action": "fixed",
                "price": 5,
                "prompt_template": "{text}",
                "handler": "echo.text",
                "tiers": {"flex": 50, "priority": 200},
            },
            {
                "service": "tier",
                "action": "batch",
                "price": 4,
                "prompt_template": "{text}",
                "handler": "echo.text",
                "tiers": {"flex": 25},
                "default_tier": "flex",
            },
            {
                "service": "tier",
                "action": "plain",
                "price": 3,
                "prompt_template": "{text}",
                "handler": "echo.text",
            },
            {
                "service": "tier",
                "action": "tokens",
                "price": 1,
                "prompt_template": "{text}",
                "handler": "echo.text",
                "input_price": 100,
                "output_price": 100,
                "max_output_tokens": 10,
                "tiers": {"priority": 150},
            },
        ],
        "deals": [{"slug": "both", "offers": ["tier/fixed", "tier/plain"]}],
    }
)


@pytest.fixture
async def tiers(api: Api, db_pool: "asyncpg.Pool[Any]") -> None:
    async with db_pool.acquire() as conn:
        await apply_catalog(conn, CATALOG, prune=False)


async def _submit(api: Api, user: NewUser, action: str, text: str, tier: str | None = None) -> Any:
    headers = auth(user) | ({"Relai-Tier": tier} if tier is not None else {})
    return await api.client.post(f"/svc/tier/{action}", json={"text": text}, headers=headers)


@pytest.mark.usefixtures("tiers")
async def test_the_catalog_shows_each_offer_s_tiers_and_default(api: Api, alice: NewUser) -> None:
    offers = {o["action"]: o for o in (await api.client.get("/svc", headers=auth(alice))).json()}
    assert offers["fixed"]["tiers"] == {"default": 100, "flex": 50, "priority": 200}
    assert offers["fixed"]["default_tier"] == "default"
    assert (offers["batch"]["tiers"], offers["batch"]["default_tier"]) == (
        {"default": 100, "flex": 25},
        "flex",
    )
    assert offers["plain"]["tiers"] == {"default": 100}


@pytest.mark.usefixtures("tiers")
async def test_a_tier_sets_the_price_and_names_a_request_of_its_own(
    api: Api, alice: NewUser, db_pool: "asyncpg.Pool[Any]"
) -> None:
    default = await _submit(api, alice, "fixed", "same")
    priority = await _submit(api, alice, "fixed", "same", "priority")
    flex = await _submit(api, alice, "fixed", "same", "flex")
    auto = await _submit(api, alice, "fixed", "same", "auto")
    batch = await _submit(api, alice, "batch", "x")  # its default tier is flex: 25 % of 4

    assert [r.status_code for r in (default, priority, flex, auto, batch)] == [202] * 5
    assert [r.json()["price"] for r in (default, priority, flex, batch)] == [5, 10, 3, 1]
    # The same inputs at another tier are another purchase; "auto" is the offer's default.
    assert len({r.json()["id"] for r in (default, priority, flex)}) == 3
    assert auto.json()["id"] == default.json()["id"]
    assert auto.json()["duplicate"]
    again = await _submit(api, alice, "fixed", "same", "priority")
    assert (again.json()["id"], again.json()["duplicate"]) == (priority.json()["id"], True)

    view = (
        await api.client.get(f"/svc/request/{priority.json()['id']}", headers=auth(alice))
    ).json()
    assert (view["tier"], view["served_tier"], view["price"]) == ("priority", None, 10)
    row = await db_pool.fetchrow(
        "SELECT tier, tier_percent FROM requests WHERE id = $1", uuid.UUID(batch.json()["id"])
    )
    assert row is not None
    assert (row["tier"], row["tier_percent"]) == ("flex", 25)
    assert await wallet_of(db_pool, alice) == (100 - 5 - 10 - 3 - 1, 5 + 10 + 3 + 1)


@pytest.mark.usefixtures("tiers")
async def test_a_tier_the_offer_does_not_sell_is_422_naming_those_it_does_and_writes_nothing(
    api: Api, alice: NewUser, db_pool: "asyncpg.Pool[Any]"
) -> None:
    for action, tier in [
        ("plain", "priority"),
        ("batch", "priority"),
        ("fixed", "urgent"),
        ("fixed", ""),  # an empty header names no tier the offer sells either
    ]:
        r = await _submit(api, alice, action, "x", tier)
        assert r.status_code == 422, r.text
        assert f"tier {tier!r} is not sold by tier/{action}" in r.json()["detail"]
    assert r.json()["tiers"] == ["default", "flex", "priority"]
    deal = await api.client.post(
        "/deal/both", json={"inputs": {"text": "x"}}, headers=auth(alice) | {"Relai-Tier": "flex"}
    )
    assert deal.status_code == 422, deal.text
    assert "a deal is served at the default tier" in deal.json()["detail"]
    assert await db_pool.fetchval("SELECT count(*) FROM requests") == 0
    assert await wallet_of(db_pool, alice) == (100, 0)


@pytest.mark.usefixtures("tiers")
async def test_billed_at_the_tier_served_when_cheaper_than_the_one_asked_for(
    api: Api, alice: NewUser, db_pool: "asyncpg.Pool[Any]"
) -> None:
    served_priority = (await _submit(api, alice, "fixed", "a", "priority")).json()["id"]
    served_default = (await _submit(api, alice, "fixed", "b", "priority")).json()["id"]
    flex_served_default = (await _submit(api, alice, "fixed", "c", "flex")).json()["id"]
    unsaid = (await _submit(api, alice, "fixed", "d", "priority")).json()["id"]
    ids = [uuid.UUID(i) for i in (served_priority, served_default, flex_served_default, unsaid)]
    await record_outcomes(
        db_pool,
        started=[Started(ids[0], 1, "priority"), Started(ids[1], 1, "default")],
    )
    await record_outcomes(
        db_pool,
        ended=[
            Ended(ids[0], 1, "succeeded", results=["a"], tier="priority"),
            Ended(ids[1], 1, "succeeded", results=["b"]),  # its start said: default
            Ended(ids[2], 1, "succeeded", results=["c"], tier="default"),
            Ended(ids[3], 1, "succeeded", results=["d"]),  # no worker said: default
        ],
    )

    assert await ledger_of(db_pool, served_priority) == {"reserve": 10, "settle": 10}
    assert await ledger_of(db_pool, served_default) == {"reserve": 10, "settle": 5, "release": 5}
    # Served better than flex, still billed flex: never a dearer tier than asked for.
    assert await ledger_of(db_pool, flex_served_default) == {"reserve": 3, "settle": 3}
    assert await ledger_of(db_pool, unsaid) == {"reserve": 10, "settle": 5, "release": 5}
    served = await db_pool.fetch(
        "SELECT id, served_tier FROM requests WHERE id = ANY($1::uuid[])", ids
    )
    assert {r["id"]: r["served_tier"] for r in served} == {
        ids[0]: "priority",
        ids[1]: "default",
        ids[2]: "default",
        ids[3]: None,
    }
    assert await wallet_of(db_pool, alice) == (100 - 10 - 5 - 3 - 5, 0)


@pytest.mark.usefixtures("tiers")
async def test_a_token_priced_request_at_a_tier_pays_that_share_of_its_usage(
    api: Api, alice: NewUser, db_pool: "asyncpg.Pool[Any]", redis_client: Redis
) -> None:
    # "hi": at most 2 + 4 + 3 = 9 input tokens and 10 output: 1 + ceil(1900 / 1000) = 3, at
    # 150 %: 5 (4.5 rounded up).
    r = await _submit(api, alice, "tokens", "hi", "priority")
    assert r.status_code == 202, r.text
    request_id = r.json()["id"]
    assert r.json()["price"] == 5
    await record_outcomes(db_pool, started=[Started(uuid.UUID(request_id), 1, "priority")])
    usage = {"input_tokens": 1, "output_tokens": 1}
    await record_outcomes(
        db_pool,
        ended=[Ended(uuid.UUID(request_id), 1, "succeeded", results=["hi"], usage=usage)],
    )
    # 1 + ceil(200 / 1000) = 2, at 150 %: 3.
    assert await ledger_of(db_pool, request_id) == {"reserve": 5, "settle": 3, "release": 2}

    # A worker that does not honour tiers serves it at default, and bills default's 2.
    r = await _submit(api, alice, "tokens", "ho", "priority")
    async with running(redis_client):
        body = await ended(api, alice, r.json()["id"])
    assert (body["status"], body["tier"], body["served_tier"]) == (
        "succeeded",
        "priority",
        "default",
    )
    assert await ledger_of(db_pool, r.json()["id"]) == {"reserve": 5, "settle": 2, "release": 3}


def test_the_catalog_refuses_a_default_tier_it_does_not_sell_and_percentages_out_of_range() -> None:
    base = {"service": "s", "action": "a", "price": 1, "prompt_template": "{t}", "handler": "h.x"}
    with pytest.raises(ValidationError, match="default_tier 'priority' is not one of"):
        OfferSpec.model_validate({**base, "tiers": {"flex": 50}, "default_tier": "priority"})
    for tiers in ({"flex": 0}, {"priority": 1001}, {"urgent": 300}, {"default": 90}):
        with pytest.raises(ValidationError):
            OfferSpec.model_validate({**base, "tiers": tiers})
    assert OfferSpec.model_validate({**base, "tiers": {"flex": 50}, "default_tier": "flex"})


@pytest.mark.usefixtures("tiers")
async def test_the_sdk_asks_with_service_tier_and_reads_the_tier_it_was_served_at(
    api: Api, alice: NewUser, db_pool: "asyncpg.Pool[Any]", redis_client: Redis
) -> None:
    hello: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hello"}]
    async with api.openai(alice.api_key) as sdk:
        with pytest.raises(openai.UnprocessableEntityError) as refused:
            await sdk.chat.completions.create(
                model="tier/plain", messages=hello, service_tier="priority"
            )
        async with running(redis_client):
            done = await sdk.chat.completions.create(
                model="tier/fixed", messages=hello, service_tier="priority"
            )
    assert "tier 'priority' is not sold by tier/plain" in refused.value.message
    # This worker runs in arrival order: served at default, and billed so.
    assert (done.choices[0].message.content, done.service_tier) == ("hello", "default")
    request_id = str(uuid.UUID(hex=done.id.removeprefix("chatcmpl-")))
    assert await ledger_of(db_pool, request_id) == {"reserve": 10, "settle": 5, "release": 5}


@pytest.mark.usefixtures("tiers")
async def test_a_place_in_the_queue_counts_the_requests_of_the_same_tier(
    api: Api, alice: NewUser
) -> None:
    defaults = [(await _submit(api, alice, "fixed", f"d{i}")).json()["id"] for i in range(3)]
    urgent = (await _submit(api, alice, "fixed", "u", "priority")).json()["id"]

    async def position(request_id: str) -> object:
        r = await api.client.get(f"/svc/request/{request_id}", headers=auth(alice))
        return r.json()["queue_position"]

    assert [await position(i) for i in defaults] == [1, 2, 3]
    assert await position(urgent) == 1  # not behind the default tier's three
