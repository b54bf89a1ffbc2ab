"""The schema. Runtime queries are written with asyncpg in each service's repository modules;
these models are the single description of the tables, used by Alembic and by tooling."""

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
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


class Identity(Base):
    """A subject of an OIDC issuer, signed in as a Relai user."""

    __tablename__ = "identities"
    __table_args__ = (Index("ix_identities_user", "user_id"),)

    issuer: Mapped[str] = mapped_column(Text, primary_key=True)
    subject: Mapped[str] = mapped_column(Text, primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = _now()


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
        CheckConstraint(
            "coalesce(input_price, 0) >= 0 AND coalesce(output_price, 0) >= 0",
            name="token_prices_not_negative",
        ),
        CheckConstraint(
            "max_output_tokens IS NULL OR max_output_tokens >= 1",
            name="max_output_tokens_positive",
        ),
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
    input_price: Mapped[Decimal | None] = mapped_column(Numeric(20, 6))
    """Credits per 1,000 input tokens, beside ``price`` (null: input tokens cost nothing)."""
    output_price: Mapped[Decimal | None] = mapped_column(Numeric(20, 6))
    """Credits per 1,000 output tokens, beside ``price``."""
    max_output_tokens: Mapped[int | None] = mapped_column(Integer)
    """The most output tokens a request may ask for, and what is reserved when it names none."""
    aliases: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default=text("'{}'::text[]"))
    """Other names of the offer at the OpenAI-compatible door. No two enabled offers share one:
    the constraint trigger ``offers_aliases_unique`` (migration 0018) refuses it."""


STATUSES = "('pending', 'running', 'succeeded', 'failed', 'expired', 'cancelled')"


class Deal(Base):
    """Offers sold together: a fixed ``price`` or the sum of the offers' prices less
    ``price_modifier`` percent, plus optional add-ons less ``addons_modifier`` percent."""

    __tablename__ = "deals"
    __table_args__ = (
        CheckConstraint("price IS NULL OR price >= 0", name="price_not_negative"),
        CheckConstraint(
            "price_modifier BETWEEN 0 AND 100 AND addons_modifier BETWEEN 0 AND 100",
            name="modifiers_are_percentages",
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID, primary_key=True)
    slug: Mapped[str] = mapped_column(Text, unique=True)
    price: Mapped[int | None] = mapped_column(BigInteger)
    price_modifier: Mapped[Decimal] = mapped_column(Numeric(5, 2), server_default="0")
    addons_modifier: Mapped[Decimal] = mapped_column(Numeric(5, 2), server_default="0")
    pipeline: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    offers: Mapped[list[Any]] = mapped_column(JSONB)
    """``[{"offer": "service/action", "mode": ...}]``, in order."""
    addons: Mapped[list[Any]] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    """``["service/action", ...]``"""
    enabled: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    created_at: Mapped[datetime] = _now()


class Request(Base):
    __tablename__ = "requests"
    __table_args__ = (
        CheckConstraint(f"status IN {STATUSES}", name="status"),
        CheckConstraint("num_nonnulls(offer_id, deal_id) = 1", name="one_target"),
        Index(
            "ix_requests_finished",
            "finished_at",
            postgresql_where=text("status IN ('succeeded', 'failed')"),
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
        Index(
            "ix_requests_user_idempotency_key",
            "user_id",
            "idempotency_key",
            unique=True,
            postgresql_where=text("idempotency_key IS NOT NULL"),
        ),
        Index(
            "ix_requests_unfinished_updated",
            "updated_at",
            "id",
            postgresql_where=text("status IN ('pending', 'running')"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID, primary_key=True)
    """Derived from a hash of the user, the offer and the canonical inputs."""
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    offer_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("offers.id"))
    deal_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("deals.id"))
    """Set instead of ``offer_id`` for a deal, whose jobs are its ``request_steps``."""
    inputs: Mapped[dict[str, Any]] = mapped_column(JSONB)
    prompt: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text, server_default="pending")
    results: Mapped[list[Any] | None] = mapped_column(JSONB)
    error: Mapped[str | None] = mapped_column(Text)
    usage: Mapped[dict[str, int] | None] = mapped_column(JSONB)
    """Provider usage reported by the job that ended it (``input_tokens``, ``output_tokens``)."""
    price: Mapped[int] = mapped_column(BigInteger)
    attempt: Mapped[int] = mapped_column(Integer, server_default="1")
    traceparent: Mapped[str | None] = mapped_column(Text)
    idempotency_key: Mapped[str | None] = mapped_column(Text)
    """The client's ``Idempotency-Key``: one request per user and key."""
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    messages: Mapped[list[Any] | None] = mapped_column(JSONB)
    """A chat request's conversation (``[{"role", "content"}]``); ``prompt`` is its last turn."""
    options: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    """A chat request's sampling options the provider is passed (``temperature``, ...)."""
    pricing: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    """The per-token prices it was accepted at (``libs.catalog.pricing``); ``price`` is then the
    most it can cost, and its end settles what its usage costs."""
    cost: Mapped[int | None] = mapped_column(BigInteger)
    """What it cost the operator: its handler's ``credits``, recorded when it is delivered."""


class RequestStep(Base):
    """One job of a deal's request: one offer, its share of the price, its own outcome."""

    __tablename__ = "request_steps"
    __table_args__ = (
        CheckConstraint("role IN ('primary', 'addon')", name="role"),
        CheckConstraint(
            "mode IS NULL OR mode IN ('overwrite', 'extend', 'pass_through')", name="mode"
        ),
        CheckConstraint(f"status IN {STATUSES}", name="status"),
        CheckConstraint("price >= 0", name="price_not_negative"),
    )

    request_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("requests.id", ondelete="CASCADE"), primary_key=True
    )
    idx: Mapped[int] = mapped_column(Integer, primary_key=True)
    offer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("offers.id"))
    role: Mapped[str] = mapped_column(Text)
    mode: Mapped[str | None] = mapped_column(Text)
    """Pipeline steps only: what the step passes on to the next."""
    price: Mapped[int] = mapped_column(BigInteger)
    """This step's share of the request's price: settled if it succeeds, else refunded."""
    status: Mapped[str] = mapped_column(Text, server_default="pending")
    attempt: Mapped[int] = mapped_column(Integer, server_default="1")
    prompt: Mapped[str | None] = mapped_column(Text)
    """Null until the step's input is known (a pipeline step waits for the previous one)."""
    results: Mapped[list[Any] | None] = mapped_column(JSONB)
    output: Mapped[list[Any] | None] = mapped_column(JSONB)
    """What a pipeline step passes on to the next one (see its ``mode``)."""
    error: Mapped[str | None] = mapped_column(Text)
    usage: Mapped[dict[str, int] | None] = mapped_column(JSONB)
    """Provider usage reported by the job that ended the step."""
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

    balance  = grant - reserve + release + refund
    reserved = reserve - settle - release - refund

    Only ``libs.ledger`` writes it.
    """

    __tablename__ = "credit_ledger"
    __table_args__ = (
        CheckConstraint("kind IN ('grant', 'reserve', 'settle', 'release', 'refund')", name="kind"),
        CheckConstraint("amount >= 0", name="amount_not_negative"),
        # One movement of each kind per request, or per step of a deal's request.
        Index(
            "uq_credit_ledger_request_step_kind",
            "request_id",
            text("coalesce(step, -1)"),
            "kind",
            unique=True,
        ),
        Index("ix_credit_ledger_user", "user_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    request_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("requests.id"))
    step: Mapped[int | None] = mapped_column(Integer)
    """The step of a deal's request a settle or refund is for."""
    kind: Mapped[str] = mapped_column(Text)
    amount: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = _now()


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
    created_at: Mapped[datetime] = _now()


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
    activated_at: Mapped[datetime] = _now()


class ConfigReveal(Base):
    """An admin decrypted a config version's secrets (``relai config show --reveal``). Kept in
    Postgres, beside the accounts that authorize it, whichever store holds the configs."""

    __tablename__ = "config_reveals"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    config_id: Mapped[str] = mapped_column(Text)
    version: Mapped[str] = mapped_column(Text)
    admin: Mapped[str] = mapped_column(Text)
    revealed_at: Mapped[datetime] = _now()


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
    updated_at: Mapped[datetime] = _now()


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
    cost: Mapped[int] = mapped_column(BigInteger, server_default="0")
    """What the delivered requests cost the operator: their handlers' ``credits``."""


class ReconMark(Base):
    """How far a recon loop has got (the usage aggregation's watermark)."""

    __tablename__ = "recon_marks"

    name: Mapped[str] = mapped_column(Text, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
