"""The caller's own money and usage: ``GET /me/ledger`` (their credit movements, read through
``libs.ledger``) and ``GET /me/usage`` (their hourly usage per offer, as recon aggregates it;
the handlers and what requests cost the operator stay the admins')."""

import uuid
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel

from libs.ledger import history
from services.api.admin.usage_endpoints import IsoDatetime
from services.api.auth.dependencies import CurrentUser
from services.api.deps import PoolDep
from services.api.errors import BadRequest

router = APIRouter(tags=["account"])


class LedgerEntry(BaseModel):
    id: int
    kind: Literal["grant", "reserve", "settle", "release", "refund"]
    """``reserve`` moves credits from ``balance`` to ``reserved``; ``settle`` spends them;
    ``release`` and ``refund`` return them to ``balance``; ``grant`` adds to it."""
    amount: int
    request_id: uuid.UUID | None
    """The request it is for; null for a grant."""
    step: int | None
    """The step of a deal's request it is for."""
    created_at: datetime


class LedgerPage(BaseModel):
    items: list[LedgerEntry]
    next_cursor: str | None
    """Pass as ``cursor`` for the next page; null on the last."""


def _cursor(value: str | None) -> int | None:
    if value is None:
        return None
    if not value.isdigit() or len(value) > 19:
        raise BadRequest("cursor is not one this API returned")
    return int(value)


@router.get(
    "/me/ledger",
    response_model=LedgerPage,
    responses={400: {"description": "A cursor this API did not return"}},
)
async def ledger(
    user: CurrentUser,
    pool: PoolDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=40)] = None,
) -> LedgerPage:
    """The caller's credit movements, newest first; ``next_cursor`` pages on."""
    rows = await history.entries(pool, user.id, before=_cursor(cursor), limit=limit + 1)
    items = [LedgerEntry.model_validate(row, from_attributes=True) for row in rows[:limit]]
    more = len(rows) > limit
    return LedgerPage(items=items, next_cursor=str(items[-1].id) if more else None)


_USAGE = """
SELECT hour, offer, sum(requests)::bigint AS requests, sum(succeeded)::bigint AS succeeded,
       sum(failed)::bigint AS failed, sum(credits)::bigint AS credits,
       sum(input_tokens)::bigint AS input_tokens, sum(output_tokens)::bigint AS output_tokens
FROM usage_hourly
WHERE user_id = $1 AND hour >= coalesce($2::timestamptz, '-infinity')
  AND hour < coalesce($3::timestamptz, 'infinity')
GROUP BY hour, offer
ORDER BY hour DESC, offer
LIMIT $4
"""


class MyUsageRow(BaseModel):
    hour: datetime
    offer: str
    """``service/action``; a deal's step counts under its own offer."""
    requests: int
    succeeded: int
    """Ended with a charge (delivered)."""
    failed: int
    """Ended without one: failed, cancelled, or expired before delivery (refunded)."""
    credits: int
    """Credits spent (settled)."""
    input_tokens: int
    output_tokens: int


@router.get("/me/usage", response_model=list[MyUsageRow])
async def usage(
    user: CurrentUser,
    pool: PoolDep,
    since: Annotated[IsoDatetime | None, Query(alias="from")] = None,
    until: Annotated[IsoDatetime | None, Query(alias="to")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> list[MyUsageRow]:
    """The caller's hourly usage per offer, newest first, ``from`` inclusive, ``to`` exclusive.
    Recon folds a request in a little after it ends (``RELAI_RECON_USAGE_INTERVAL_S``)."""
    rows = await pool.fetch(_USAGE, user.id, since, until, limit)
    return [MyUsageRow.model_validate(dict(r)) for r in rows]
