"""What clients read of their requests, whichever door they came through (the submit statements
are ``repository``'s)."""

from __future__ import annotations

import math
import uuid
from datetime import datetime
from typing import Any

import asyncpg

from libs.files.uploads import input_files_json

_STATE = (
    "SELECT status, price, attempt, deal_id IS NOT NULL AS deal, pricing, prompt, messages, "
    "tier_percent FROM requests WHERE id = $1 AND user_id = $2"
)

DRAIN_WINDOW_S = 60.0
"""How far back the rate at which a user's requests end is measured (ETAs, ``Retry-After``)."""

# The same user's pending requests for the same handler and tier submitted before this one
# (counted up to $3), and how many of their requests for that handler ended in the last $2
# seconds: another user's activity is none of their business.
_PLACE = """
WITH me AS (
    SELECT r.id, r.user_id, r.created_at, r.tier, o.handler_id
    FROM requests r JOIN offers o ON o.id = r.offer_id
    WHERE r.id = $1
)
SELECT
    (SELECT count(*) FROM (
        SELECT 1 FROM requests r JOIN offers o ON o.id = r.offer_id, me
        WHERE r.user_id = me.user_id AND r.status = 'pending' AND r.tier = me.tier
          AND (r.created_at, r.id) < (me.created_at, me.id) AND o.handler_id = me.handler_id
        LIMIT $3) s)
        AS ahead,
    (SELECT count(*) FROM requests r JOIN offers o ON o.id = r.offer_id, me
     WHERE r.user_id = me.user_id AND r.status IN ('succeeded', 'failed')
       AND r.updated_at > now() - make_interval(secs => $2) AND o.handler_id = me.handler_id)
        AS ended
"""

# How many of the user's requests ended in the last $2 seconds.
_ENDED = """
SELECT count(*) FROM requests
WHERE user_id = $1 AND status IN ('succeeded', 'failed')
  AND updated_at > now() - make_interval(secs => $2)
"""

# A deal's request has no offer: it reads as service ``deal``, action <the deal's slug>. A view
# of its inputs (one request, a page) shows its input files (``input_files``); the WebSocket's
# states show no inputs.
_VIEW_COLUMNS = """
r.id, coalesce(o.service, 'deal') AS service, coalesce(o.action, d.slug) AS action, r.deal_id,
r.status, r.inputs, r.results, r.error, r.usage, r.price, r.attempt,
r.created_at, r.updated_at, r.started_at, r.finished_at, r.tier, r.served_tier,
r.model || '@' || r.model_version AS model
"""
_INPUT_FILES = f"{input_files_json('r.id')} AS input_files"

_GET = f"""
SELECT {_VIEW_COLUMNS}, {_INPUT_FILES} FROM requests r LEFT JOIN offers o ON o.id = r.offer_id
LEFT JOIN deals d ON d.id = r.deal_id
WHERE r.id = $1 AND r.user_id = $2
"""

_LIST = f"""
SELECT {_VIEW_COLUMNS}, {_INPUT_FILES} FROM requests r LEFT JOIN offers o ON o.id = r.offer_id
LEFT JOIN deals d ON d.id = r.deal_id
WHERE r.user_id = $1
  AND ($2::timestamptz IS NULL OR (r.created_at, r.id) < ($2, $3))
  AND ($4::text IS NULL OR r.status = $4)
ORDER BY r.created_at DESC, r.id DESC
LIMIT $5
"""


_UNFINISHED = f"""
SELECT {_VIEW_COLUMNS} FROM requests r LEFT JOIN offers o ON o.id = r.offer_id
LEFT JOIN deals d ON d.id = r.deal_id
WHERE r.user_id = $1 AND r.status IN ('pending', 'running')
ORDER BY r.created_at
LIMIT $2
"""

_CHANGED_SINCE = f"""
SELECT {_VIEW_COLUMNS} FROM requests r LEFT JOIN offers o ON o.id = r.offer_id
LEFT JOIN deals d ON d.id = r.deal_id
WHERE r.user_id = $1 AND r.updated_at >= $2
ORDER BY r.updated_at
LIMIT $3
"""


async def get_view(
    pool: asyncpg.Pool[Any], request_id: uuid.UUID, user_id: uuid.UUID
) -> asyncpg.Record | None:
    return await pool.fetchrow(_GET, request_id, user_id)


async def list_views(
    pool: asyncpg.Pool[Any],
    user_id: uuid.UUID,
    *,
    before: tuple[datetime, uuid.UUID] | None,
    status: str | None,
    limit: int,
) -> list[asyncpg.Record]:
    created_at, last_id = before if before else (None, None)
    return await pool.fetch(_LIST, user_id, created_at, last_id, status, limit)


async def unfinished_views(
    pool: asyncpg.Pool[Any], user_id: uuid.UUID, *, limit: int
) -> list[asyncpg.Record]:
    """The user's pending and running requests, oldest first."""
    return await pool.fetch(_UNFINISHED, user_id, limit)


async def views_changed_since(
    pool: asyncpg.Pool[Any], user_id: uuid.UUID, since: datetime, *, limit: int
) -> list[asyncpg.Record]:
    """The user's requests whose state changed at or after ``since``, in order of change."""
    return await pool.fetch(_CHANGED_SINCE, user_id, since, limit)


async def get_state(
    pool: asyncpg.Pool[Any], request_id: uuid.UUID, user_id: uuid.UUID
) -> asyncpg.Record | None:
    """The request's status, price and current attempt, and what prices it (its per-token
    prices and input), if it is this user's."""
    return await pool.fetchrow(_STATE, request_id, user_id)


async def queue_place(pool: asyncpg.Pool[Any], request_id: uuid.UUID) -> tuple[int, int]:
    """How many of its user's pending requests for the same handler were submitted before it,
    and how many of the user's requests for that handler ended in the last
    ``DRAIN_WINDOW_S``."""
    row = await pool.fetchrow(_PLACE, request_id, DRAIN_WINDOW_S, PLACE_COUNTED)
    return (int(row["ahead"]), int(row["ended"])) if row else (0, 0)


PLACE_COUNTED = 10_000
"""The most requests ahead counted: past it a place reads as this many (counting a user's whole
backlog on every read would cost more than the answer is worth)."""
PLACE_EXACT = 100
"""Places up to this one are exact; past it they read rounded down to a coarse step (at least
that many ahead), which is all a place that far back can promise under fair scheduling."""
_PLACE_STEPS = (100, 200, 500, 1_000, 2_000, 5_000, 10_000)


def place_of(ahead: int, ended: int) -> tuple[int, int | None]:
    """``(queue_position, queue_eta_s)`` from ``queue_place``'s counts: the ETA is the position
    over the rate at which the user's requests ended, none when none did. Past ``PLACE_EXACT``,
    the position is the coarse step below it (its ETA the exact one's)."""
    exact = 1 + ahead
    position = exact
    if exact > PLACE_EXACT:
        position = max(step for step in _PLACE_STEPS if step <= exact)
    return position, math.ceil(exact * DRAIN_WINDOW_S / ended) if ended else None


async def ended_recently(pool: asyncpg.Pool[Any], user_id: uuid.UUID) -> int:
    """How many of the user's requests ended in the last ``DRAIN_WINDOW_S``."""
    return int(await pool.fetchval(_ENDED, user_id, DRAIN_WINDOW_S) or 0)
