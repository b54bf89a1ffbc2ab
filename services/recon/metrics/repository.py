"""Figures for the metrics read from Postgres."""

from dataclasses import dataclass

from libs.db import PgConnection

_TOP_SPENDERS = """
SELECT u.name, sum(l.amount)::bigint AS spent
FROM credit_ledger l JOIN users u ON u.id = l.user_id
WHERE l.kind = 'settle' AND l.created_at > now() - make_interval(secs => $1)
GROUP BY u.name ORDER BY spent DESC, u.name LIMIT $2
"""


@dataclass(frozen=True, slots=True)
class Spender:
    name: str
    spent: int


async def top_spenders(conn: PgConnection, *, window_s: float, limit: int) -> list[Spender]:
    """The users who were charged the most credits (settled) over the last ``window_s``."""
    rows = await conn.fetch(_TOP_SPENDERS, window_s, limit)
    return [Spender(r["name"], r["spent"]) for r in rows]
