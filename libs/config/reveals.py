"""The record of secrets revealed: every ``relai config show --reveal`` by an admin, kept in
Postgres beside the accounts that authorize it (whichever store holds the configs)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from libs.db import PgConnection


@dataclass(frozen=True, slots=True)
class Reveal:
    config_id: str
    version: str
    admin: str
    revealed_at: datetime


async def record_reveal(conn: PgConnection, *, config_id: str, version: str, admin: str) -> None:
    await conn.execute(
        "INSERT INTO config_reveals (config_id, version, admin) VALUES ($1, $2, $3)",
        config_id,
        version,
        admin,
    )


async def reveals(
    conn: PgConnection, *, config_id: str | None = None, limit: int = 100
) -> list[Reveal]:
    """The latest reveals first, of one config or of all."""
    rows = await conn.fetch(
        "SELECT config_id, version, admin, revealed_at FROM config_reveals "
        "WHERE $1::text IS NULL OR config_id = $1 ORDER BY id DESC LIMIT $2",
        config_id,
        limit,
    )
    return [Reveal(**dict(row)) for row in rows]
