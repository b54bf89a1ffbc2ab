"""Users, their API keys and their identities at an OIDC provider."""

import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    Text,
)
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from libs.db.models._base import Base, now


class User(Base):
    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint("role IN ('user', 'admin')", name="role"),
        CheckConstraint("balance >= 0", name="balance_not_negative"),
        CheckConstraint("reserved >= 0", name="reserved_not_negative"),
        CheckConstraint("weight BETWEEN 1 AND 100", name="weight_range"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID, primary_key=True)
    name: Mapped[str] = mapped_column(Text, unique=True)
    role: Mapped[str] = mapped_column(Text, server_default="user")
    balance: Mapped[int] = mapped_column(BigInteger, server_default="0")
    """Credits available to spend."""
    reserved: Mapped[int] = mapped_column(BigInteger, server_default="0")
    """Credits held by requests that have not ended yet."""
    created_at: Mapped[datetime] = now()
    weight: Mapped[int] = mapped_column(Integer, server_default="1")
    """Under fair scheduling, how many of the user's jobs are taken per turn (1 to 100)."""


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = mapped_column(UUID, primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    key_hash: Mapped[bytes] = mapped_column(LargeBinary, unique=True)
    prefix: Mapped[str] = mapped_column(Text)
    """The first characters of the key, kept to tell keys apart in listings."""
    created_at: Mapped[datetime] = now()
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Identity(Base):
    """A subject of an OIDC issuer, signed in as a Relai user."""

    __tablename__ = "identities"
    __table_args__ = (Index("ix_identities_user", "user_id"),)

    issuer: Mapped[str] = mapped_column(Text, primary_key=True)
    subject: Mapped[str] = mapped_column(Text, primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = now()
