"""Expiry by the database clock: delivered results are purged, undelivered work is refunded,
and a late result changes nothing."""

import asyncio
import uuid
from typing import Any

import asyncpg
import pytest
from redis.asyncio import Redis

from libs.accounts import NewUser
from libs.outcomes import (
    Ended,
    StepEnded,
    StepStarted,
    record_outcomes,
)
from services.recon.expiry.service import ExpiryLoop
from tests.deals_support import load_deals_catalog, record_steps, submit_deal, submit_offer
from tests.support import create_user


@pytest.fixture
async def user(db_pool: "asyncpg.Pool[Any]") -> NewUser:
    await load_deals_catalog(db_pool)
    await db_pool.execute("UPDATE offers SET expiration = 60")
    return await create_user(db_pool, name="erin", credits=1000)


def _loop(pool: "asyncpg.Pool[Any]", redis: Redis, batch: int = 100) -> ExpiryLoop:
    return ExpiryLoop(pool, redis, interval_s=60, batch=batch)


async def _age(pool: "asyncpg.Pool[Any]", request_id: uuid.UUID, seconds: int) -> None:
    """Move the request's clock back: it was created, and ended if it did, ``seconds`` ago."""
    await pool.execute(
        """UPDATE requests SET created_at = created_at - make_interval(secs => $2),
                  finished_at = finished_at - make_interval(secs => $2)
           WHERE id = $1""",
        request_id,
        seconds,
    )


async def _money(pool: "asyncpg.Pool[Any]", user: NewUser) -> tuple[int, int, int]:
    row = await pool.fetchrow("SELECT balance, reserved FROM users WHERE id = $1", user.id)
    ledger = await pool.fetchval(
        """SELECT sum(CASE kind WHEN 'reserve' THEN -amount WHEN 'settle' THEN 0
                              ELSE amount END) FROM credit_ledger WHERE user_id = $1""",
        user.id,
    )
    assert row is not None
    return row["balance"], row["reserved"], ledger


async def test_delivered_results_are_purged_after_the_expiration(
    db_pool: "asyncpg.Pool[Any]", redis_client: Redis, user: NewUser
) -> None:
    old = await submit_offer(db_pool, user.id, "demo", "echo", "old")
    young = await submit_offer(db_pool, user.id, "demo", "echo", "young")
    await record_outcomes(
        db_pool,
        ended=[Ended(old, 1, "succeeded", ["old"]), Ended(young, 1, "succeeded", ["young"])],
    )
    await _age(db_pool, old, 61)
    await _age(db_pool, young, 59)
    before = await _money(db_pool, user)

    assert await _loop(db_pool, redis_client).run_once() == 1

    rows = {
        r["id"]: (r["status"], r["results"])
        for r in await db_pool.fetch("SELECT id, status, results FROM requests")
    }
    assert rows == {old: ("expired", None), young: ("succeeded", ["young"])}
    assert await _money(db_pool, user) == before  # delivered: it stays paid for
    assert await _loop(db_pool, redis_client).run_once() == 0


async def test_undelivered_request_expires_refunded_and_a_late_result_changes_nothing(
    db_pool: "asyncpg.Pool[Any]", redis_client: Redis, user: NewUser
) -> None:
    request_id = await submit_offer(db_pool, user.id, "demo", "echo", "late")
    await _age(db_pool, request_id, 61)

    assert await _loop(db_pool, redis_client).run_once() == 1
    assert await _money(db_pool, user) == (1000, 0, 1000)
    row = await db_pool.fetchrow("SELECT status, error FROM requests WHERE id = $1", request_id)
    assert row is not None
    assert (row["status"], row["error"]) == ("expired", "expired before delivery")

    assert await record_outcomes(db_pool, ended=[Ended(request_id, 1, "succeeded", ["x"])]) == []
    assert await _money(db_pool, user) == (1000, 0, 1000)
    kinds = await db_pool.fetch(
        "SELECT kind FROM credit_ledger WHERE request_id = $1 ORDER BY id", request_id
    )
    assert [k["kind"] for k in kinds] == ["reserve", "refund"]


async def test_deal_expiring_mid_way_refunds_only_the_steps_not_delivered(
    db_pool: "asyncpg.Pool[Any]", redis_client: Redis, user: NewUser
) -> None:
    submitted = await submit_deal(
        db_pool,
        user.id,
        "bundle",
        {"text": "t", "name": "n", "age": "1"},
        addons=["demo/sleep"],
    )
    assert submitted.price == 8
    await record_steps(
        db_pool,
        started=[StepStarted(submitted.id, 1, 1)],
        ended=[StepEnded(submitted.id, 0, 1, "succeeded", ["t"])],
    )
    await _age(db_pool, submitted.id, 61)

    assert await _loop(db_pool, redis_client).run_once() == 1

    steps = await db_pool.fetch(
        "SELECT idx, status, results FROM request_steps WHERE request_id = $1 ORDER BY idx",
        submitted.id,
    )
    assert [(s["status"], s["results"]) for s in steps] == [("expired", None)] * 3
    ledger = await db_pool.fetch(
        # The steps' refunds are written by one statement, in no set order: compare by step.
        "SELECT step, kind, amount FROM credit_ledger WHERE request_id = $1 "
        "ORDER BY step NULLS FIRST, id",
        submitted.id,
    )
    assert [(r["step"], r["kind"], r["amount"]) for r in ledger] == [
        (None, "reserve", 8),
        (0, "settle", 2),
        (1, "refund", 3),
        (2, "refund", 3),
    ]
    assert await _money(db_pool, user) == (1000 - 2, 0, 1000 - 2)

    late = await record_steps(db_pool, ended=[StepEnded(submitted.id, 1, 1, "succeeded", ["x"])])
    assert late == []
    assert await _money(db_pool, user) == (1000 - 2, 0, 1000 - 2)


async def test_concurrent_runs_expire_each_request_once(
    db_pool: "asyncpg.Pool[Any]", redis_client: Redis, user: NewUser
) -> None:
    ids = [await submit_offer(db_pool, user.id, "demo", "echo", f"r{n}") for n in range(30)]
    for request_id in ids:
        await _age(db_pool, request_id, 120)

    counts = await asyncio.gather(
        *(_loop(db_pool, redis_client, batch=7).run_once() for _ in range(3))
    )

    assert sum(counts) == 30
    assert await _money(db_pool, user) == (1000, 0, 1000)
    refunds = await db_pool.fetchval("SELECT count(*) FROM credit_ledger WHERE kind = 'refund'")
    assert refunds == 30
