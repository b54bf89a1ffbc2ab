"""The outbox table: rows written beside the state they follow from, taken by the relay."""

from __future__ import annotations

import asyncpg

from libs.contracts import TASKS_STREAM
from libs.db import PgConnection

if not TASKS_STREAM.replace(":", "").isalnum():  # pragma: no cover - spliced into SQL below
    raise ValueError(f"stream name {TASKS_STREAM!r} is not a plain SQL literal")

_TAKE = """
DELETE FROM outbox WHERE id IN (
    SELECT id FROM outbox ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED
) RETURNING id, stream, payload,
    extract(epoch FROM clock_timestamp() - created_at)::float8 AS age
"""


def queue(source: str, *, name: str = "queued") -> str:
    """A CTE named ``name`` that queues a task for each row (``request_id, payload``) of
    ``source``, to splice into the statement that decides them."""
    return f"""{name} AS (
    INSERT INTO outbox (stream, request_id, payload)
    SELECT '{TASKS_STREAM}', request_id, payload FROM {source}
)"""


async def take(conn: PgConnection, limit: int) -> list[asyncpg.Record]:
    """Up to ``limit`` rows, oldest first, deleted in the caller's transaction (rows another
    relay holds are skipped): ``id, stream, payload`` and ``age`` in seconds."""
    return await conn.fetch(_TAKE, limit)
