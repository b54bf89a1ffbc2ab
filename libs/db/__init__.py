"""The database: SQLAlchemy models (the schema Alembic migrates) and the asyncpg pool."""

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
    "recreate_database",
    "sqlalchemy_url",
]
