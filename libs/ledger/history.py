"""Reading a user's ledger: their own credit movements, newest first. The only SQL on
``credit_ledger`` outside this package's writes; callers page with the id of the last row."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from libs.db import PgConnection, PgPool

_ENTRIES = """
SELECT id, kind, amount, request_id, step, created_at FROM credit_ledger
WHERE user_id = $1 AND ($2::bigint IS NULL OR id < $2)
ORDER BY id DESC
LIMIT $3
"""


@dataclass(frozen=True, slots=True)
class Entry:
    id: int
    kind: str
    """``grant``, ``reserve``, ``settle``, ``release`` or ``refund``."""
    amount: int
    request_id: uuid.UUID | None
    step: int | None
    created_at: datetime


async def entries(
    db: PgPool | PgConnection, user_id: uuid.UUID, *, before: int | None, limit: int
) -> list[Entry]:
    """The user's movements, newest first, those older than the entry ``before`` (all: None)."""
    rows = await db.fetch(_ENTRIES, user_id, before, limit)
    return [Entry(**dict(row)) for row in rows]
