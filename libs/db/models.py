"""The schema. Runtime queries are written with asyncpg in each service's repository modules;
these models are the single description of the tables, used by Alembic and by tooling."""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def _now() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)


class User(Base):
    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint("role IN ('user', 'admin')", name="role"),
        CheckConstraint("balance >= 0", name="balance_not_negative"),
        CheckConstraint("reserved >= 0", name="reserved_not_negative"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID, primary_key=True)
    name: Mapped[str] = mapped_column(Text, unique=True)
    role: Mapped[str] = mapped_column(Text, server_default="user")
    balance: Mapped[int] = mapped_column(BigInteger, server_default="0")
    """Credits available to spend."""
    reserved: Mapped[int] = mapped_column(BigInteger, server_default="0")
    """Credits held by requests that have not ended yet."""
    created_at: Mapped[datetime] = _now()


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = mapped_column(UUID, primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    key_hash: Mapped[bytes] = mapped_column(LargeBinary, unique=True)
    prefix: Mapped[str] = mapped_column(Text)
    """The first characters of the key, kept to tell keys apart in listings."""
    created_at: Mapped[datetime] = _now()
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Handler(Base):
    __tablename__ = "handlers"
    __table_args__ = (CheckConstraint("id ~ '^[a-z0-9_]+\\.[a-z0-9_]+$'", name="id_format"),)

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    """``module.method``, the key of the worker's handler registry."""
    credits: Mapped[int] = mapped_column(BigInteger, server_default="0")
    params: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    max_concurrency: Mapped[int | None] = mapped_column(Integer)
    enabled: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    created_at: Mapped[datetime] = _now()


class Offer(Base):
    __tablename__ = "offers"
    __table_args__ = (
        UniqueConstraint("service", "action", name="uq_offers_service_action"),
        CheckConstraint("price >= 0", name="price_not_negative"),
        CheckConstraint("create_qty >= 1", name="create_qty_positive"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID, primary_key=True)
    service: Mapped[str] = mapped_column(Text)
    action: Mapped[str] = mapped_column(Text)
    price: Mapped[int] = mapped_column(BigInteger)
    prompt_template: Mapped[str] = mapped_column(Text)
    handler_id: Mapped[str] = mapped_column(ForeignKey("handlers.id"))
    create_qty: Mapped[int] = mapped_column(Integer, server_default="1")
    expiration: Mapped[int | None] = mapped_column(Integer)
    """Seconds results are kept; no expiry when null."""
    params: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    enabled: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    created_at: Mapped[datetime] = _now()


class Request(Base):
    __tablename__ = "requests"
    __table_args__ = (
        CheckConstraint(
            "status IN ('pending', 'running', 'succeeded', 'failed', 'cancelled')", name="status"
        ),
        Index("ix_requests_user_created", "user_id", text("created_at DESC"), text("id DESC")),
        Index("ix_requests_user_updated", "user_id", "updated_at"),
        Index(
            "ix_requests_pending",
            "created_at",
            postgresql_where=text("status = 'pending'"),
        ),
        Index(
            "ix_requests_unfinished",
            "user_id",
            "created_at",
            postgresql_where=text("status IN ('pending', 'running')"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID, primary_key=True)
    """Derived from a hash of the user, the offer and the canonical inputs."""
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    offer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("offers.id"))
    inputs: Mapped[dict[str, Any]] = mapped_column(JSONB)
    prompt: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text, server_default="pending")
    results: Mapped[list[Any] | None] = mapped_column(JSONB)
    error: Mapped[str | None] = mapped_column(Text)
    price: Mapped[int] = mapped_column(BigInteger)
    attempt: Mapped[int] = mapped_column(Integer, server_default="1")
    traceparent: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class OutboxEntry(Base):
    """A message committed with the change that caused it, published to Redis by the relay."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    stream: Mapped[str] = mapped_column(Text)
    request_id: Mapped[uuid.UUID] = mapped_column(UUID)
    payload: Mapped[str] = mapped_column(Text)
    """The message's JSON, exactly as it goes on the stream."""
    created_at: Mapped[datetime] = _now()


class CreditEntry(Base):
    """One movement of a user's credits. ``balance`` and ``reserved`` always equal their sums:

    balance  = grant - reserve + refund
    reserved = reserve - settle - refund
    """

    __tablename__ = "credit_ledger"
    __table_args__ = (
        CheckConstraint("kind IN ('grant', 'reserve', 'settle', 'refund')", name="kind"),
        CheckConstraint("amount >= 0", name="amount_not_negative"),
        UniqueConstraint("request_id", "kind", name="uq_credit_ledger_request_kind"),
        Index("ix_credit_ledger_user", "user_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    request_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("requests.id"))
    kind: Mapped[str] = mapped_column(Text)
    amount: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = _now()
