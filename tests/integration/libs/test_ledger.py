"""The ledger's movements against the real Postgres: each kind moves the balance and the
reservation as its table says, an ending settles what was spent and releases the rest, and a
short balance aborts a reserving statement with nothing written."""

import uuid
from typing import Any

import asyncpg
import pytest

from libs import ledger
from libs.ledger import movements
from tests.support import create_user, load_demo_catalog

# A request, reserved in the statement that creates it, as the submission core does.
_RESERVE = f"""
WITH ins AS (
    INSERT INTO requests (id, user_id, offer_id, inputs, prompt, price, traceparent)
    SELECT $1, $2, id, '{{}}', '', $3, '' FROM offers WHERE action = 'echo'
    RETURNING id
), {movements.reserve_or_abort(request="ins", user="$2", amount="$3")}
SELECT 1
"""

# A request ends: succeeded with ``spent`` credits of its price, or otherwise.
_END = f"""
WITH ended AS (
    SELECT user_id, id AS request_id, NULL::int AS step, $2::text AS status, price, $3::bigint
        AS spent
    FROM requests WHERE id = $1
), moves AS {movements.ending("ended", spent="e.spent")}, {movements.apply("moves")}
SELECT 1
"""


async def _wallet(pool: "asyncpg.Pool[Any]", user_id: uuid.UUID) -> tuple[int, int]:
    row = await pool.fetchrow("SELECT balance, reserved FROM users WHERE id = $1", user_id)
    assert row is not None
    return row["balance"], row["reserved"]


async def _kinds(pool: "asyncpg.Pool[Any]", request_id: uuid.UUID) -> dict[str, int]:
    rows = await pool.fetch(
        "SELECT kind, amount FROM credit_ledger WHERE request_id = $1", request_id
    )
    return {r["kind"]: r["amount"] for r in rows}


@pytest.mark.parametrize(
    ("status", "spent", "wallet", "kinds"),
    [
        ("succeeded", 10, (90, 0), {"reserve": 10, "settle": 10}),
        ("succeeded", 4, (96, 0), {"reserve": 10, "settle": 4, "release": 6}),
        ("succeeded", 0, (100, 0), {"reserve": 10, "settle": 0, "release": 10}),
        ("succeeded", 25, (90, 0), {"reserve": 10, "settle": 10}),  # never more than reserved
        ("succeeded", None, (90, 0), {"reserve": 10, "settle": 10}),
        ("failed", None, (100, 0), {"reserve": 10, "refund": 10}),
        ("cancelled", None, (100, 0), {"reserve": 10, "refund": 10}),
        ("cancelled", 10, (90, 0), {"reserve": 10, "settle": 10}),  # its output was delivered
        ("cancelled", 3, (97, 0), {"reserve": 10, "settle": 3, "refund": 7}),
    ],
)
async def test_an_ending_settles_what_was_spent_and_returns_the_rest(
    db_pool: "asyncpg.Pool[Any]",
    status: str,
    spent: int | None,
    wallet: tuple[int, int],
    kinds: dict[str, int],
) -> None:
    await load_demo_catalog(db_pool)
    user = await create_user(db_pool, name="ada", credits=100)
    request_id = uuid.uuid4()
    await db_pool.execute(_RESERVE, request_id, user.id, 10)
    assert await _wallet(db_pool, user.id) == (90, 10)
    await db_pool.execute(_END, request_id, status, spent)
    assert await _wallet(db_pool, user.id) == wallet
    assert await _kinds(db_pool, request_id) == kinds


async def test_a_short_balance_aborts_the_whole_statement(db_pool: "asyncpg.Pool[Any]") -> None:
    await load_demo_catalog(db_pool)
    user = await create_user(db_pool, name="bob", credits=5)
    request_id = uuid.uuid4()
    with pytest.raises(ledger.ShortBalance), ledger.short_balance():
        await db_pool.execute(_RESERVE, request_id, user.id, 6)
    assert await db_pool.fetchval("SELECT count(*) FROM requests") == 0
    assert await _wallet(db_pool, user.id) == (5, 0)


async def test_moves_and_grants_keep_the_ledger_equal_to_the_wallet(
    db_pool: "asyncpg.Pool[Any]",
) -> None:
    user = await create_user(db_pool, name="cy", credits=10)
    async with db_pool.acquire() as conn, conn.transaction():
        assert await ledger.grant(conn, user_id=user.id, amount=5) == 15
        moves = [(None, "reserve", 8), (None, "settle", 3), (None, "release", 5)]
        assert await ledger.apply_moves(conn, user_id=user.id, request_id=None, moves=moves) == 12
        assert await ledger.apply_moves(conn, user_id=user.id, request_id=None, moves=[]) is None
    assert await _wallet(db_pool, user.id) == (12, 0)
    sums = await db_pool.fetchrow(
        """SELECT sum(amount) FILTER (WHERE kind IN ('grant', 'release', 'refund'))
                - sum(amount) FILTER (WHERE kind = 'reserve') AS balance
           FROM credit_ledger WHERE user_id = $1""",
        user.id,
    )
    assert sums is not None
    assert sums["balance"] == 12
