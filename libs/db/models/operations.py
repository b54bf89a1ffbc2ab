"""Central configs and their versions, hourly usage, and recon's marks."""

import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from libs.db.models._base import Base, now


class ConfigVersion(Base):
    """One uploaded version of a central config, as stored: secrets are Fernet tokens."""

    __tablename__ = "config_versions"
    __table_args__ = (UniqueConstraint("config_id", "version", name="uq_config_versions_version"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    config_id: Mapped[str] = mapped_column(Text)
    version: Mapped[str] = mapped_column(Text)
    document: Mapped[str] = mapped_column(Text)
    """The sealed YAML (``~key`` values encrypted, ``!ENV`` references kept)."""
    checksum: Mapped[str] = mapped_column(Text)
    """``sha256:<hex>`` of ``document``."""
    author: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = now()


class ConfigActivation(Base):
    """One activation of a config version; ``previous_id`` is the activation it replaced, which
    is what a rollback returns to."""

    __tablename__ = "config_activations"
    __table_args__ = (
        ForeignKeyConstraint(
            ["config_id", "version"],
            ["config_versions.config_id", "config_versions.version"],
            name="fk_config_activations_version",
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    config_id: Mapped[str] = mapped_column(Text)
    version: Mapped[str] = mapped_column(Text)
    previous_id: Mapped[int | None] = mapped_column(ForeignKey("config_activations.id"))
    author: Mapped[str] = mapped_column(Text)
    activated_at: Mapped[datetime] = now()


class ConfigReveal(Base):
    """An admin decrypted a config version's secrets (``relai config show --reveal``). Kept in
    Postgres, beside the accounts that authorize it, whichever store holds the configs."""

    __tablename__ = "config_reveals"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    config_id: Mapped[str] = mapped_column(Text)
    version: Mapped[str] = mapped_column(Text)
    admin: Mapped[str] = mapped_column(Text)
    revealed_at: Mapped[datetime] = now()


class Config(Base):
    """One row per config id: its active version (at most one) and the activation that made it."""

    __tablename__ = "configs"
    __table_args__ = (
        ForeignKeyConstraint(
            ["id", "active_version"],
            ["config_versions.config_id", "config_versions.version"],
            name="fk_configs_active_version",
        ),
    )

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    active_version: Mapped[str | None] = mapped_column(Text)
    activation_id: Mapped[int | None] = mapped_column(ForeignKey("config_activations.id"))
    updated_at: Mapped[datetime] = now()


class UsageHour(Base):
    """What each user spent, per hour, offer, handler and integration, and what it cost the
    operator: aggregated by recon from ended requests (and deal steps), queried by
    ``GET /admin/usage``."""

    __tablename__ = "usage_hourly"

    hour: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), primary_key=True)
    handler_id: Mapped[str] = mapped_column(Text, primary_key=True)
    integration: Mapped[str] = mapped_column(Text, primary_key=True, server_default="")
    requests: Mapped[int] = mapped_column(BigInteger, server_default="0")
    succeeded: Mapped[int] = mapped_column(BigInteger, server_default="0")
    failed: Mapped[int] = mapped_column(BigInteger, server_default="0")
    """Ended without a result: failed, cancelled or expired before delivery."""
    credits: Mapped[int] = mapped_column(BigInteger, server_default="0")
    """Credits settled (spent)."""
    input_tokens: Mapped[int] = mapped_column(BigInteger, server_default="0")
    output_tokens: Mapped[int] = mapped_column(BigInteger, server_default="0")
    offer: Mapped[str] = mapped_column(Text, primary_key=True, server_default="")
    """``service/action``; a deal's step counts under its own offer."""
    model: Mapped[str] = mapped_column(Text, primary_key=True, server_default="")
    """``name@version`` of the model that served it, for an offer of a model."""
    cost: Mapped[int] = mapped_column(BigInteger, server_default="0")
    """What the delivered requests cost the operator: their handlers' ``credits``."""


class ReconMark(Base):
    """How far a recon loop has got (the usage aggregation's watermark)."""

    __tablename__ = "recon_marks"

    name: Mapped[str] = mapped_column(Text, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
