"""Usage per hour, user, offer, handler and integration: recon folds ended requests in exactly
once, with what they cost the operator, admins read it over ``GET /admin/usage``, and recon
exports this hour's revenue and cost per offer."""

import asyncio
import uuid
from typing import Any

import asyncpg
import httpx
from prometheus_client import REGISTRY

from libs.accounts import NewUser
from libs.catalog import CatalogSpec, apply_catalog
from libs.outcomes import Ended, record_outcomes
from services.recon.usage.service import UsageLoop
from tests.integration.api.conftest import Api, auth
from tests.support import create_user

CATALOG = CatalogSpec.model_validate(
    {
        "handlers": [
            {"id": "echo.text"},
            {"id": "echo.delay", "credits": 3, "params": {"integration": "openai"}},
        ],
        "offers": [
            {
                "service": "u",
                "action": "plain",
                "price": 2,
                "prompt_template": "{t}",
                "handler": "echo.text",
            },
            {
                "service": "u",
                "action": "paid",
                "price": 5,
                "prompt_template": "{t}",
                "handler": "echo.delay",
            },
        ],
    }
)


async def _submit(client: httpx.AsyncClient, user: NewUser, action: str, text: str) -> uuid.UUID:
    r = await client.post(f"/svc/u/{action}", json={"t": text}, headers=auth(user))
    assert r.status_code == 202, r.text
    return uuid.UUID(r.json()["id"])


async def _end(pool: "asyncpg.Pool[Any]", *ended: Ended) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await record_outcomes(conn, ended=list(ended))


async def test_usage_is_folded_in_once_and_served_to_admins(
    api: Api, alice: NewUser, bob: NewUser, db_pool: "asyncpg.Pool[Any]"
) -> None:
    async with db_pool.acquire() as conn:
        await apply_catalog(conn, CATALOG)
    root = await create_user(db_pool, name="root", credits=0, role="admin")
    client = api.client
    a1 = await _submit(client, alice, "paid", "one")
    a2 = await _submit(client, alice, "paid", "two")
    a3 = await _submit(client, alice, "plain", "three")
    b1 = await _submit(client, bob, "paid", "four")
    pending = await _submit(client, bob, "plain", "not yet")
    usage = {"input_tokens": 3, "output_tokens": 7}
    await _end(
        db_pool,
        Ended(a1, 1, "succeeded", results=["x"], usage=usage),
        Ended(a2, 1, "failed", error="boom", usage={"input_tokens": 3}),
        Ended(a3, 1, "succeeded", results=["y"]),
        Ended(b1, 1, "succeeded", results=["z"], usage=usage),
    )
    loop = UsageLoop(db_pool, interval_s=60, lag_s=0)

    assert await loop.run_once() == 3  # alice x paid, alice x plain, bob x paid
    assert await loop.run_once() == 0  # nothing counted twice
    await _end(db_pool, Ended(pending, 1, "succeeded", results=["late"]))
    assert await loop.run_once() == 1

    r = await client.get("/admin/usage", headers=auth(root))
    assert r.status_code == 200, r.text
    rows = {(u["user"], u["handler"], u["integration"]): u for u in r.json()}
    assert set(rows) == {
        ("alice", "echo.delay", "openai"),
        ("alice", "echo.text", ""),
        ("bob", "echo.delay", "openai"),
        ("bob", "echo.text", ""),
    }
    paid = rows[("alice", "echo.delay", "openai")]
    assert (paid["requests"], paid["succeeded"], paid["failed"], paid["credits"]) == (2, 1, 1, 5)
    assert (paid["input_tokens"], paid["output_tokens"]) == (6, 7)
    assert (paid["offer"], paid["cost"]) == ("u/paid", 3)  # the failed one cost nothing
    assert rows[("bob", "echo.text", "")]["credits"] == 2
    assert rows[("bob", "echo.text", "")]["cost"] == 0  # echo.text's credits

    by_offer = await client.get("/admin/usage", params={"offer": "u/plain"}, headers=auth(root))
    assert sorted((u["user"], u["offer"], u["credits"]) for u in by_offer.json()) == [
        ("alice", "u/plain", 2),
        ("bob", "u/plain", 2),
    ]
    assert REGISTRY.get_sample_value("relai_usage_offer_credits", {"offer": "u/paid"}) == 10
    assert REGISTRY.get_sample_value("relai_usage_offer_cost_credits", {"offer": "u/paid"}) == 6
    assert REGISTRY.get_sample_value("relai_usage_offer_credits", {"offer": "u/plain"}) == 4

    only_openai = await client.get(
        "/admin/usage", params={"integration": "openai", "user": "bob"}, headers=auth(root)
    )
    assert [(u["user"], u["credits"]) for u in only_openai.json()] == [("bob", 5)]
    none = await client.get(
        "/admin/usage", params={"to": "2000-01-01T00:00:00Z"}, headers=auth(root)
    )
    assert none.json() == []
    assert (await client.get("/admin/usage", headers=auth(alice))).status_code == 403


async def test_an_ending_committed_late_is_still_counted_once(
    api: Api, alice: NewUser, db_pool: "asyncpg.Pool[Any]"
) -> None:
    async with db_pool.acquire() as conn:
        await apply_catalog(conn, CATALOG)
    slow = await _submit(api.client, alice, "paid", "slow")
    loop = UsageLoop(db_pool, interval_s=60, lag_s=0.2)
    async with db_pool.acquire() as conn:
        transaction = conn.transaction()
        await transaction.start()
        # Stamped finished now, committed well past the lag: a run in between must wait for it.
        await record_outcomes(conn, ended=[Ended(slow, 1, "succeeded", results=["x"])])
        await asyncio.sleep(0.6)
        assert await loop.run_once() == 0
        await transaction.commit()
    await asyncio.sleep(0.3)

    assert await loop.run_once() == 1
    assert await loop.run_once() == 0
    row = await db_pool.fetchrow("SELECT requests, credits FROM usage_hourly")
    assert row is not None
    assert (row["requests"], row["credits"]) == (1, 5)


async def test_at_the_turn_of_the_hour_last_hours_series_read_zero_and_older_ones_are_gone(
    alice: NewUser, db_pool: "asyncpg.Pool[Any]"
) -> None:
    async with db_pool.acquire() as conn:
        await apply_catalog(conn, CATALOG)
    user_id = await db_pool.fetchval("SELECT id FROM users WHERE name = 'alice'")
    # Rows as the aggregation writes them: the hour before this one, and the hour before that.
    for hours_ago, handler, offer, credits in [
        (1, "echo.delay", "u/paid", 5),
        (2, "echo.text", "u/plain", 2),
    ]:
        await db_pool.execute(
            "INSERT INTO usage_hourly (hour, user_id, handler_id, integration, offer, requests,"
            " succeeded, failed, credits, input_tokens, output_tokens, cost)"
            " VALUES (date_trunc('hour', now()) - make_interval(hours => $1), $2, $3, '', $4,"
            " 1, 1, 0, $5, 3, 7, 1)",
            hours_ago,
            user_id,
            handler,
            offer,
            credits,
        )

    await UsageLoop(db_pool, interval_s=60, lag_s=0).run_once()

    def sample(name: str, labels: dict[str, str]) -> float | None:
        return REGISTRY.get_sample_value(name, labels)

    assert sample("relai_usage_offer_credits", {"offer": "u/paid"}) == 0
    assert sample("relai_usage_offer_cost_credits", {"offer": "u/paid"}) == 0
    assert sample("relai_usage_hour_credits", {"handler": "echo.delay", "integration": ""}) == 0
    tokens = {"handler": "echo.delay", "integration": "", "kind": "output"}
    assert sample("relai_usage_hour_tokens", tokens) == 0
    # Two hours ago is history: /admin/usage has it, the gauges do not.
    assert sample("relai_usage_offer_credits", {"offer": "u/plain"}) is None
    assert sample("relai_usage_hour_credits", {"handler": "echo.text", "integration": ""}) is None
