"""The declarative base every model shares, with the constraint naming convention."""

from datetime import datetime

from sqlalchemy import DateTime, MetaData, func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

STATUSES = "('pending', 'running', 'succeeded', 'failed', 'expired', 'cancelled')"
"""A request's statuses, as SQL, for the CHECK constraints of requests and their steps."""


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def now() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)
