"""Model aliases at ``/v1``, with the ``openai`` SDK against a real API server: an alias the
catalog gives an offer is a model, listed and retrieved, callable as soon as it is written, and
a call under it is the call under the offer's ``service/action``: the same request, answered
under the name the client used."""

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import openai
import pytest
from redis.asyncio import Redis

from libs.catalog import CatalogSpec, OfferSpec, apply_catalog, upsert_offer
from tests.integration.api.conftest import Api, serving, settings_for
from tests.integration.worker.helpers import running
from tests.support import DEMO_CATALOG, ServerUrls, create_user

ALIASES = {"ask": ["relai-echo", "gpt-4o-mini"], "greet": ["greeter"]}


def _offer(action: str, **fields: Any) -> OfferSpec:
    offer = next(o for o in DEMO_CATALOG.offers if o.action == action)
    return OfferSpec.model_validate({**offer.model_dump(), **fields})


@pytest.fixture
async def aliased(servers: ServerUrls, db_pool: "asyncpg.Pool[Any]") -> AsyncIterator[Api]:
    """The demo catalog, demo/ask and demo/greet (no chat model: two variables) with aliases."""
    data = DEMO_CATALOG.model_dump()
    for offer in data["offers"]:
        offer["aliases"] = ALIASES.get(offer["action"], [])
    async with db_pool.acquire() as conn:
        await apply_catalog(conn, CatalogSpec.model_validate(data))
    async with serving(settings_for(servers)) as api:
        yield api


async def test_an_alias_is_a_model_listed_and_retrieved(
    aliased: Api, db_pool: "asyncpg.Pool[Any]"
) -> None:
    user = await create_user(db_pool, name="lister", credits=10)
    async with aliased.openai(user.api_key) as sdk:
        listed = {m.id: m.owned_by async for m in sdk.models.list()}
        assert {"demo/ask": "demo", "relai-echo": "demo", "gpt-4o-mini": "demo"}.items() <= (
            listed.items()
        )
        assert "greeter" not in listed  # demo/greet is no chat model
        model = await sdk.models.retrieve("relai-echo")
        assert (model.id, model.object, model.owned_by) == ("relai-echo", "model", "demo")
        written = await db_pool.fetchval(
            "SELECT created_at FROM offers WHERE service = 'demo' AND action = 'ask'"
        )
        assert model.created == int(written.timestamp())  # when the offer was written
        assert {m.created async for m in sdk.models.list() if m.id == "demo/ask"} == {model.created}
        assert (await sdk.models.retrieve("demo/ask")).id == "demo/ask"
        for name in ("greeter", "gpt-4o"):
            with pytest.raises(openai.NotFoundError):
                await sdk.models.retrieve(name)
        with pytest.raises(openai.NotFoundError) as unknown:
            await sdk.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "hello"}]
            )
    assert unknown.value.code == "model_not_found"
    assert "'gpt-4o' does not exist" in unknown.value.message
    assert await db_pool.fetchval("SELECT count(*) FROM requests") == 0


async def test_an_alias_is_callable_as_soon_as_it_is_written(
    aliased: Api, db_pool: "asyncpg.Pool[Any]"
) -> None:
    user = await create_user(db_pool, name="early", credits=10)
    async with aliased.openai(user.api_key) as sdk:
        await sdk.models.retrieve("relai-echo")  # the catalog is loaded
        async with db_pool.acquire() as conn:
            await upsert_offer(conn, _offer("echo", aliases=["fresh"]))
        await asyncio.sleep(1.1)  # a miss reloads the catalog at most once a second
        assert (await sdk.models.retrieve("fresh")).owned_by == "demo"


async def test_a_call_under_an_alias_is_the_call_under_the_offer_s_name(
    aliased: Api, db_pool: "asyncpg.Pool[Any]", redis_client: Redis
) -> None:
    user = await create_user(db_pool, name="caller", credits=10)
    messages: Any = [{"role": "user", "content": "hello there"}]
    async with aliased.openai(user.api_key) as sdk, running(redis_client):
        aliased_answer = await sdk.chat.completions.create(model="relai-echo", messages=messages)
        named_answer = await sdk.chat.completions.create(model="demo/ask", messages=messages)
        streamed = await sdk.chat.completions.create(
            model="gpt-4o-mini", messages=messages, stream=True
        )
        chunks = [chunk async for chunk in streamed]
        response = await sdk.responses.create(model="gpt-4o-mini", input="hello response")
    assert aliased_answer.choices[0].message.content == "hello there"
    assert (aliased_answer.model, named_answer.model) == ("relai-echo", "demo/ask")
    assert named_answer.id == aliased_answer.id  # one request, run and charged once
    assert {c.id for c in chunks} == {aliased_answer.id}
    assert {c.model for c in chunks} == {"gpt-4o-mini"}
    assert (response.model, response.output_text) == ("gpt-4o-mini", "hello response")
    rows = await db_pool.fetch(
        "SELECT o.service, o.action, r.price FROM requests r JOIN offers o ON o.id = r.offer_id"
        " WHERE r.user_id = $1",
        user.id,
    )
    assert sorted(tuple(r) for r in rows) == [("demo", "ask", 1)] * 2
    assert await db_pool.fetchval("SELECT balance FROM users WHERE id = $1", user.id) == 8
