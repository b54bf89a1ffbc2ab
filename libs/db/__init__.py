"""The database: the asyncpg pool and a ``LISTEN`` connection held for as long as a task runs.
The SQLAlchemy models (the schema Alembic migrates) are in ``libs.db.models``, imported only by
what needs them: SQLAlchemy takes a second to import, at every process start."""

from libs.db.listen import listen_forever
from libs.db.pool import (
    DATABASE_ERRORS,
    OUTBOX_CHANNEL,
    PgConnection,
    PgPool,
    create_pool,
    recreate_database,
    sqlalchemy_url,
)

__all__ = [
    "DATABASE_ERRORS",
    "OUTBOX_CHANNEL",
    "PgConnection",
    "PgPool",
    "create_pool",
    "listen_forever",
    "recreate_database",
    "sqlalchemy_url",
]
