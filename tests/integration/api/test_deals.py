"""Deals over HTTP: discovery, submission (one request, a step per offer, one reservation),
and the refusals that write nothing."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any, cast

import asyncpg
import pytest
from redis.asyncio import Redis

from libs.accounts import NewUser
from libs.contracts import TASKS_STREAM, TaskMessage
from libs.contracts.streams import MESSAGE_FIELD
from libs.streams import Entry
from services.api.submission import repository
from tests.deals_support import load_deals_catalog
from tests.integration.api.conftest import Api, auth, serving, settings_for
from tests.openapi_check import assert_openapi_3
from tests.support import ServerUrls, create_user


@pytest.fixture
async def deals_api(servers: ServerUrls, db_pool: "asyncpg.Pool[Any]") -> AsyncIterator[Api]:
    await load_deals_catalog(db_pool)
    async with serving(settings_for(servers)) as running:
        yield running


async def _written(pool: "asyncpg.Pool[Any]") -> tuple[int, int, int]:
    return (
        await pool.fetchval("SELECT count(*) FROM requests"),
        await pool.fetchval("SELECT count(*) FROM request_steps"),
        await pool.fetchval("SELECT count(*) FROM credit_ledger WHERE kind <> 'grant'"),
    )


async def _queued_steps(pool: "asyncpg.Pool[Any]", redis: Redis) -> list[int]:
    """The steps of the tasks on the tasks stream, once the relay has published them all."""
    async with asyncio.timeout(10):
        while await pool.fetchval("SELECT count(*) FROM outbox"):
            await asyncio.sleep(0.05)
    entries = cast(list[Entry], await redis.xrange(TASKS_STREAM))
    return sorted(TaskMessage.model_validate_json(f[MESSAGE_FIELD]).step or 0 for _, f in entries)


async def test_deals_are_listed_with_price_and_inputs(deals_api: Api, alice: NewUser) -> None:
    r = await deals_api.client.get("/deals", headers=auth(alice))
    assert r.status_code == 200
    deals = {d["slug"]: d for d in r.json()}
    assert set(deals) == {"bundle", "chain", "broken-chain"}
    bundle = deals["bundle"]
    assert bundle["price"] == 5
    assert [(o["service"], o["action"]) for o in bundle["offers"]] == [
        ("demo", "echo"),
        ("demo", "greet"),
    ]
    assert bundle["inputs"]["required"] == ["text", "name", "age"]
    assert set(bundle["inputs"]["properties"]) == {"text", "name", "age", "prompt"}
    chain = deals["chain"]
    assert chain["price"] == 30
    assert chain["inputs"]["required"] == ["text"]
    assert [o["mode"] for o in chain["offers"]] == ["overwrite", "extend", "pass_through"]
    assert (await deals_api.client.get("/deals/nope", headers=auth(alice))).status_code == 404


async def test_a_deal_given_a_token_priced_offer_around_the_catalog_is_not_offered(
    servers: ServerUrls, db_pool: "asyncpg.Pool[Any]", alice: NewUser
) -> None:
    """Deals have fixed prices: one whose add-on gained token prices in the database, past the
    catalog's checks, is not sold at all."""
    await load_deals_catalog(db_pool)
    await db_pool.execute("UPDATE offers SET input_price = 1 WHERE action = 'sleep'")
    async with serving(settings_for(servers)) as api:
        listed = (await api.client.get("/deals", headers=auth(alice))).json()
        assert {d["slug"] for d in listed} == {"chain", "broken-chain"}
        r = await api.client.post(
            "/deal/bundle",
            json={"inputs": {"text": "t", "name": "n", "age": "1"}},
            headers=auth(alice),
        )
        assert r.status_code == 404, r.text
    assert await _written(db_pool) == (0, 0, 0)


async def test_openapi_shows_each_deal_input_schema(deals_api: Api, alice: NewUser) -> None:
    document = (await deals_api.client.get("/openapi.json")).json()
    assert_openapi_3(document)
    operation = document["paths"]["/deal/bundle"]["post"]
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    assert body["properties"]["inputs"]["required"] == ["text", "name", "age"]
    assert body["properties"]["addons"]["items"]["enum"] == ["demo/sleep", "demo/ask"]


async def test_deal_is_one_request_with_a_step_per_offer_and_one_reservation(
    deals_api: Api, alice: NewUser, db_pool: "asyncpg.Pool[Any]", redis_client: Redis
) -> None:
    inputs = {"text": "hi", "name": "Ada", "age": "36"}
    body: dict[str, Any] = {"inputs": inputs, "addons": ["demo/sleep"]}
    r = await deals_api.client.post("/deal/bundle", json=body, headers=auth(alice))
    assert r.status_code == 202, r.text
    submitted = r.json()
    assert (submitted["price"], submitted["duplicate"]) == (5 + 3, False)
    steps = submitted["steps"]
    assert [(s["service"], s["action"], s["role"], s["price"]) for s in steps] == [
        ("demo", "echo", "primary", 2),
        ("demo", "greet", "primary", 3),
        ("demo", "sleep", "addon", 3),
    ]
    assert {s["status"] for s in steps} == {"pending"}
    assert await _written(db_pool) == (1, 3, 1)
    assert await _queued_steps(db_pool, redis_client) == [0, 1, 2]  # all start at once
    me = (await deals_api.client.get("/me", headers=auth(alice))).json()
    assert (me["balance"], me["reserved"]) == (100 - 8, 8)

    again = await deals_api.client.post("/deal/bundle", json=body, headers=auth(alice))
    assert again.status_code == 202
    assert again.json()["id"] == submitted["id"]
    assert again.json()["duplicate"] is True
    assert await _written(db_pool) == (1, 3, 1)

    fresh = await deals_api.client.post(
        "/deal/bundle", json=body, headers={**auth(alice), "Idempotency-Key": "run-2"}
    )
    assert fresh.json()["id"] != submitted["id"]
    reused = await deals_api.client.post(
        "/deal/bundle",
        json={**body, "inputs": {**inputs, "text": "other"}},
        headers={**auth(alice), "Idempotency-Key": "run-2"},
    )
    assert reused.status_code == 422, reused.text
    assert "Idempotency-Key was already used" in reused.json()["detail"]
    reordered = {"addons": ["demo/ask", "demo/sleep"], "inputs": {**inputs, "prompt": "p"}}
    other = await deals_api.client.post("/deal/bundle", json=reordered, headers=auth(alice))
    assert other.status_code == 202
    assert other.json()["price"] == 5 + 3  # sleep 5 + ask 1 = 6, less 50 % = 3

    view = (
        await deals_api.client.get(f"/svc/request/{submitted['id']}", headers=auth(alice))
    ).json()
    assert (view["service"], view["action"], view["status"]) == ("deal", "bundle", "pending")
    assert [s["step"] for s in view["steps"]] == [0, 1, 2]
    listed = (await deals_api.client.get("/svc/requests", headers=auth(alice))).json()
    assert submitted["id"] in {item["id"] for item in listed["items"]}


async def test_pipeline_queues_only_its_first_step(
    deals_api: Api, alice: NewUser, db_pool: "asyncpg.Pool[Any]", redis_client: Redis
) -> None:
    r = await deals_api.client.post(
        "/deal/chain", json={"inputs": {"text": "hi"}}, headers=auth(alice)
    )
    assert r.status_code == 202, r.text
    assert [s["price"] for s in r.json()["steps"]] == [5, 10, 15]  # 30 shared 10:20:30
    assert await _written(db_pool) == (1, 3, 1)
    assert await _queued_steps(db_pool, redis_client) == [0]
    prompts = await db_pool.fetch("SELECT prompt FROM request_steps ORDER BY idx")
    assert [p["prompt"] for p in prompts] == ["A[hi]", None, None]


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        ({"inputs": {"text": "hi"}}, 422, "missing inputs: name, age"),
        ({"inputs": {"text": "hi", "name": "a", "age": "1", "x": "y"}}, 422, "unknown inputs: x"),
        ({"inputs": {"text": "hi", "name": "a", "age": 1}}, 422, "must be strings: age"),
        ({"inputs": {"text": "hi\u0000", "name": "a", "age": "1"}}, 422, "NUL characters: text"),
        (
            {"inputs": {"text": "hi", "name": "a", "age": "1"}, "addons": ["demo/nope"]},
            422,
            "unknown add-ons: demo/nope",
        ),
        (
            {"inputs": {"text": "hi", "name": "a", "age": "1"}, "addons": ["demo/ask"]},
            422,
            "missing inputs: prompt",
        ),
    ],
)
async def test_bad_deal_submissions_write_nothing(
    deals_api: Api,
    alice: NewUser,
    db_pool: "asyncpg.Pool[Any]",
    body: dict[str, Any],
    status: int,
    fragment: str,
) -> None:
    r = await deals_api.client.post("/deal/bundle", json=body, headers=auth(alice))
    assert r.status_code == status, r.text
    assert fragment in r.json()["detail"]
    assert await _written(db_pool) == (0, 0, 0)


async def test_short_balance_is_402_and_writes_nothing(
    deals_api: Api, db_pool: "asyncpg.Pool[Any]"
) -> None:
    poor = await create_user(db_pool, name="poor", credits=29)
    r = await deals_api.client.post(
        "/deal/chain", json={"inputs": {"text": "hi"}}, headers=auth(poor)
    )
    assert r.status_code == 402
    assert r.json()["price"] == 30
    assert await _written(db_pool) == (0, 0, 0)
    unknown = await deals_api.client.post("/deal/nope", json={}, headers=auth(poor))
    assert unknown.status_code == 404


async def test_concurrent_deals_and_offers_share_batches_and_are_each_charged_once(
    deals_api: Api,
    db_pool: "asyncpg.Pool[Any]",
    redis_client: Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Deals go through the group commit as offers do: submitted at once (each twice), mixed
    with offers, every request is written once with its steps, one reservation and a task per
    step that starts; and the balance stops them exactly where it runs out."""
    rich = await create_user(db_pool, name="rich", credits=1000)
    batches: list[tuple[int, int]] = []  # (deals, offers) of each batch statement
    insert_many = repository.insert_many

    async def recorded(db: Any, batch: list[repository.NewRequest]) -> set[uuid.UUID]:
        deals = sum(new.deal_id is not None for new in batch)
        batches.append((deals, len(batch) - deals))
        return await insert_many(db, batch)

    monkeypatch.setattr(repository, "insert_many", recorded)

    def deal(n: int) -> dict[str, Any]:
        inputs = {"text": f"t{n}", "name": f"n{n}", "age": "3"}
        return {"inputs": inputs, "addons": ["demo/sleep"]}

    calls = [
        deals_api.client.post("/deal/bundle", json=deal(n % 30), headers=auth(rich))
        for n in range(60)
    ] + [
        deals_api.client.post("/svc/demo/echo", json={"text": f"e{n % 30}"}, headers=auth(rich))
        for n in range(60)
    ]
    responses = await asyncio.gather(*calls)
    assert {r.status_code for r in responses} == {202}
    deal_ids = {r.json()["id"] for r in responses[:60]}
    offer_ids = {r.json()["id"] for r in responses[60:]}
    assert (len(deal_ids), len(offer_ids)) == (30, 30)
    assert sum(not r.json()["duplicate"] for r in responses) == 60
    assert any(deals > 1 and offers > 0 for deals, offers in batches)
    assert all(len(r.json()["steps"]) == 3 for r in responses[:60])
    # 30 requests of 3 steps and 30 of none; one reservation each.
    assert await _written(db_pool) == (60, 90, 60)
    steps = await _queued_steps(db_pool, redis_client)
    assert (steps.count(0), steps.count(1), steps.count(2)) == (30 + 30, 30, 30)
    spent = 30 * (5 + 3) + 30 * 2
    assert await _balance(db_pool, rich) == (1000 - spent, spent)

    tight = await create_user(db_pool, name="tight", credits=20)  # two deals and two offers
    mixed = await asyncio.gather(
        *(
            deals_api.client.post("/deal/bundle", json=deal(100 + n), headers=auth(tight))
            if n % 2
            else deals_api.client.post(
                "/svc/demo/echo", json={"text": f"x{n}"}, headers=auth(tight)
            )
            for n in range(20)
        )
    )
    accepted = [r for r in mixed if r.status_code == 202]
    assert {r.status_code for r in mixed} <= {202, 402}
    taken = sum(r.json()["price"] for r in accepted)
    assert taken <= 20
    assert await _balance(db_pool, tight) == (20 - taken, taken)
    reserves = await db_pool.fetchval(
        "SELECT count(*) FROM credit_ledger l JOIN users u ON u.id = l.user_id "
        "WHERE u.name = 'tight' AND l.kind = 'reserve'"
    )
    assert reserves == len(accepted)


async def _balance(pool: "asyncpg.Pool[Any]", user: NewUser) -> tuple[int, int]:
    row = await pool.fetchrow("SELECT balance, reserved FROM users WHERE id = $1", user.id)
    assert row is not None
    return row["balance"], row["reserved"]
