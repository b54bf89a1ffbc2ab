from libs.db import PgConnection
from services.dispatcher.health.schemas import Backlog

_BACKLOG = """
SELECT count(*) AS pending,
       count(*) FILTER (WHERE next_attempt_at <= now()) AS due,
       extract(epoch FROM now() - min(created_at))::float8 AS oldest
FROM webhook_deliveries WHERE status = 'pending'
"""


async def read_backlog(conn: PgConnection) -> Backlog:
    row = await conn.fetchrow(_BACKLOG)
    assert row is not None
    return Backlog(pending=row["pending"], due=row["due"], oldest_pending_age_seconds=row["oldest"])
