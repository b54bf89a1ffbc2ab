"""The completion loop for deals: a step whose task was lost is re-driven with a new attempt
(the old attempt's late result then changes nothing), and after the last attempt it fails,
refunding it and the pipeline steps after it."""

from typing import Any

import asyncpg
import pytest
from redis.asyncio import Redis

from libs.accounts import NewUser
from libs.contracts import TaskMessage
from libs.outcomes import StepEnded
from services.recon.completion.service import CompletionLoop
from tests.deals_support import load_deals_catalog, record_steps, submit_deal
from tests.support import create_user


@pytest.fixture
async def user(db_pool: "asyncpg.Pool[Any]") -> NewUser:
    await load_deals_catalog(db_pool)
    return await create_user(db_pool, name="frank", credits=100)


def _loop(pool: "asyncpg.Pool[Any]", redis: Redis) -> CompletionLoop:
    return CompletionLoop(pool, redis, interval_s=60, stuck_after_s=60, max_attempts=2, batch=10)


async def _lose_and_age(pool: "asyncpg.Pool[Any]") -> None:
    """The relay published the tasks and Redis lost them; nothing moved for two minutes."""
    await pool.execute("DELETE FROM outbox")
    await pool.execute("UPDATE requests SET updated_at = now() - interval '2 minutes'")


async def test_lost_step_is_redriven_then_failed_and_refunded(
    db_pool: "asyncpg.Pool[Any]", redis_client: Redis, user: NewUser
) -> None:
    submitted = await submit_deal(db_pool, user.id, "chain", {"text": "hi"})
    await _lose_and_age(db_pool)

    first = await _loop(db_pool, redis_client).run_once()

    assert (first.redriven, first.failed) == (1, 0)
    rows = await db_pool.fetch("SELECT payload FROM outbox")
    tasks = [TaskMessage.model_validate_json(r["payload"]) for r in rows]
    assert [(t.step, t.attempt, t.prompt) for t in tasks] == [(0, 2, "A[hi]")]
    late = StepEnded(submitted.id, 0, 1, "succeeded", ["A[hi]"])
    assert await record_steps(db_pool, ended=[late]) == []

    await _lose_and_age(db_pool)
    second = await _loop(db_pool, redis_client).run_once()

    assert (second.redriven, second.failed) == (0, 1)
    request = await db_pool.fetchrow("SELECT status, error FROM requests")
    assert request is not None
    assert request["status"] == "failed"
    assert "no result after 2 attempts" in request["error"]
    money = await db_pool.fetchrow("SELECT balance, reserved FROM users WHERE id = $1", user.id)
    assert money is not None
    assert (money["balance"], money["reserved"]) == (100, 0)
    assert await db_pool.fetchval("SELECT count(*) FROM outbox") == 0
