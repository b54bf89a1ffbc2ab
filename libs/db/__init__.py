"""The database: SQLAlchemy models (the schema Alembic migrates), the asyncpg pool, and a
``LISTEN`` connection held for as long as a task runs."""

from libs.db.listen import listen_forever
from libs.db.models import (
    ApiKey,
    Base,
    Config,
    ConfigActivation,
    ConfigVersion,
    CreditEntry,
    Deal,
    Handler,
    Offer,
    OutboxEntry,
    Request,
    RequestStep,
    User,
)
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
    "ApiKey",
    "Base",
    "Config",
    "ConfigActivation",
    "ConfigVersion",
    "CreditEntry",
    "Deal",
    "Handler",
    "Offer",
    "OutboxEntry",
    "Request",
    "RequestStep",
    "User",
    "DATABASE_ERRORS",
    "OUTBOX_CHANNEL",
    "PgConnection",
    "PgPool",
    "create_pool",
    "listen_forever",
    "recreate_database",
    "sqlalchemy_url",
]
