"""Step outcomes of a deal's request against the real statements: pipelines advance through
the outbox in the transaction that records the step, and repeats or stale attempts change
nothing."""

from typing import Any

import asyncpg
import pytest

from libs.accounts import NewUser
from libs.contracts import TaskMessage
from libs.outcomes import StepEnded, StepStarted
from tests.deals_support import load_deals_catalog, record_steps, submit_deal
from tests.support import create_user


@pytest.fixture
async def user(db_pool: "asyncpg.Pool[Any]") -> NewUser:
    await load_deals_catalog(db_pool)
    return await create_user(db_pool, name="dora", credits=100)


async def _queued(pool: "asyncpg.Pool[Any]") -> list[TaskMessage]:
    rows = await pool.fetch("SELECT payload FROM outbox ORDER BY id")
    return [TaskMessage.model_validate_json(r["payload"]) for r in rows]


async def test_pipeline_step_queues_the_next_with_its_output_once(
    db_pool: "asyncpg.Pool[Any]", user: NewUser
) -> None:
    submitted = await submit_deal(db_pool, user.id, "chain", {"text": "hi"})
    await db_pool.execute("DELETE FROM outbox")  # as if the relay had published step 0
    done = StepEnded(submitted.id, 0, 1, "succeeded", ["A[hi]"])

    rows = await record_steps(db_pool, ended=[done])
    assert [r["status"] for r in rows] == ["running"]
    queued = await _queued(db_pool)
    assert [(t.step, t.prompt, t.attempt) for t in queued] == [(1, "B[A[hi]]", 1)]

    # The same report again, another outcome of an ended step, and a report from an attempt
    # older than the step's current one change nothing.
    assert await record_steps(db_pool, ended=[done]) == []
    contrary = StepEnded(submitted.id, 0, 1, "failed", error="late")
    assert await record_steps(db_pool, ended=[contrary]) == []
    await db_pool.execute("UPDATE request_steps SET attempt = 2 WHERE idx = 1")
    old_attempt = StepEnded(submitted.id, 1, 1, "failed", error="presumed dead")
    assert await record_steps(db_pool, ended=[old_attempt]) == []
    assert len(await _queued(db_pool)) == 1
    steps = await db_pool.fetch("SELECT status FROM request_steps ORDER BY idx")
    assert [s["status"] for s in steps] == ["succeeded", "pending", "pending"]
    user_row = await db_pool.fetchrow("SELECT balance, reserved FROM users WHERE id = $1", user.id)
    assert user_row is not None
    assert (user_row["balance"], user_row["reserved"]) == (70, 25)  # step 0's 5 settled


async def test_started_and_ended_in_one_batch_end_the_step_and_the_request(
    db_pool: "asyncpg.Pool[Any]", user: NewUser
) -> None:
    submitted = await submit_deal(
        db_pool, user.id, "bundle", {"text": "t", "name": "n", "age": "1"}
    )
    rows = await record_steps(
        db_pool,
        started=[StepStarted(submitted.id, 0, 1), StepStarted(submitted.id, 1, 1)],
        ended=[
            StepEnded(submitted.id, 0, 1, "succeeded", ["t"]),
            StepEnded(submitted.id, 1, 1, "failed", error="boom"),
        ],
    )
    assert [r["status"] for r in rows] == ["running", "failed"]
    assert rows[-1]["error"] == "step 1 (demo/greet) failed: boom"
    user_row = await db_pool.fetchrow("SELECT balance, reserved FROM users WHERE id = $1", user.id)
    assert user_row is not None
    assert (user_row["balance"], user_row["reserved"]) == (100 - 2, 0)


async def test_each_steps_usage_is_kept_and_the_request_sums_them(
    db_pool: "asyncpg.Pool[Any]", user: NewUser
) -> None:
    submitted = await submit_deal(
        db_pool, user.id, "bundle", {"text": "t", "name": "n", "age": "1"}
    )
    await record_steps(
        db_pool,
        ended=[
            StepEnded(submitted.id, 0, 1, "succeeded", ["t"], usage={"input_tokens": 3}),
            StepEnded(
                submitted.id,
                1,
                1,
                "succeeded",
                ["n"],
                usage={"input_tokens": 4, "output_tokens": 9},
            ),
        ],
    )
    steps = await db_pool.fetch(
        "SELECT usage FROM request_steps WHERE request_id = $1 ORDER BY idx", submitted.id
    )
    assert [s["usage"] for s in steps] == [
        {"input_tokens": 3},
        {"input_tokens": 4, "output_tokens": 9},
    ]
    request = await db_pool.fetchrow(
        "SELECT status, usage FROM requests WHERE id = $1", submitted.id
    )
    assert request is not None
    assert request["status"] == "succeeded"
    assert request["usage"] == {"input_tokens": 7, "output_tokens": 9}
