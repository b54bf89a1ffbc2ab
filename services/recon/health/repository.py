"""Health figures read from Postgres. Ages use the database clock, never this host's."""

from dataclasses import dataclass

from libs.contracts import FINAL_STATUSES
from libs.db import PgConnection

_BACKLOG = """
WITH unfinished AS (
    SELECT created_at FROM requests WHERE status <> ALL($1::text[])
)
SELECT
    (SELECT count(*) FROM outbox) AS outbox_count,
    (SELECT extract(epoch FROM clock_timestamp() - min(created_at))::float8 FROM outbox)
        AS outbox_oldest_age,
    (SELECT count(*) FROM unfinished) AS unfinished_count,
    (SELECT extract(epoch FROM clock_timestamp() - min(created_at))::float8 FROM unfinished)
        AS unfinished_oldest_age
"""


@dataclass(frozen=True)
class Backlog:
    outbox_count: int
    outbox_oldest_age: float | None
    unfinished_count: int
    unfinished_oldest_age: float | None


async def read_backlog(conn: PgConnection) -> Backlog:
    row = await conn.fetchrow(_BACKLOG, sorted(FINAL_STATUSES))
    assert row is not None
    return Backlog(
        outbox_count=row["outbox_count"],
        outbox_oldest_age=row["outbox_oldest_age"],
        unfinished_count=row["unfinished_count"],
        unfinished_oldest_age=row["unfinished_oldest_age"],
    )
