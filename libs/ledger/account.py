"""Credit movements a caller makes one at a time, in its own transaction."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import asyncpg

from libs.db import PgConnection, PgPool
from libs.ledger.movements import apply

_MOVES = f"""
WITH moves AS (
    SELECT $1::uuid AS user_id, $2::uuid AS request_id, t.step, t.kind, t.amount
    FROM unnest($3::int[], $4::text[], $5::bigint[]) AS t(step, kind, amount)
), {apply("moves")}
SELECT balance FROM ledger_balances
"""


class ShortBalance(Exception):
    """A reservation the user's balance does not cover; the statement wrote nothing."""


@contextmanager
def short_balance() -> Iterator[None]:
    """Around a statement that reserves with ``movements.reserve_or_abort``: its abort on a
    short balance (the ledger row's NULL user) becomes ``ShortBalance``."""
    try:
        yield
    except asyncpg.NotNullViolationError as exc:
        if exc.table_name == "credit_ledger" and exc.column_name == "user_id":
            raise ShortBalance from exc
        raise


async def lock_wallet(conn: PgConnection, user_id: uuid.UUID) -> None:
    """Hold the user's wallet (the row every reservation of theirs updates) until the caller's
    transaction ends: what the caller decides meanwhile sees every earlier submission of this
    user committed, and the next waits for it."""
    await conn.execute("SELECT 1 FROM users WHERE id = $1 FOR UPDATE", user_id)


async def apply_moves(
    conn: PgConnection,
    *,
    user_id: uuid.UUID,
    request_id: uuid.UUID | None,
    moves: Sequence[tuple[int | None, str, int]],
) -> int | None:
    """Apply ``(step, kind, amount)`` movements of one user, for one request (or none), in the
    caller's transaction; returns the user's new balance (None when there was nothing to do)."""
    if not moves:
        return None
    steps, kinds, amounts = zip(*moves, strict=True)
    balance: int | None = await conn.fetchval(
        _MOVES, user_id, request_id, list(steps), list(kinds), list(amounts)
    )
    return balance


async def grant(conn: PgConnection, *, user_id: uuid.UUID, amount: int) -> int | None:
    """Give ``amount`` credits to the user; returns the new balance, or None for no such user.
    Raises ``asyncpg.NumericValueOutOfRangeError`` when the balance would overflow."""
    return await apply_moves(
        conn, user_id=user_id, request_id=None, moves=[(None, "grant", amount)]
    )


async def refunded(db: PgPool | PgConnection, request_id: uuid.UUID) -> int:
    """Credits the request's refunds returned to the balance."""
    return int(
        await db.fetchval(
            "SELECT coalesce(sum(amount), 0) FROM credit_ledger "
            "WHERE request_id = $1 AND kind = 'refund'",
            request_id,
        )
    )
