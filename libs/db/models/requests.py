"""Requests and their steps, the outbox that queues their work, and the credit ledger."""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, DateTime, ForeignKey, Index, Integer, Text, text
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from libs.db.models._base import STATUSES, Base, now


class Request(Base):
    __tablename__ = "requests"
    __table_args__ = (
        CheckConstraint(f"status IN {STATUSES}", name="status"),
        CheckConstraint("num_nonnulls(offer_id, deal_id) = 1", name="one_target"),
        CheckConstraint(
            "tier IN ('flex', 'default', 'priority') AND (served_tier IS NULL OR served_tier IN "
            "('flex', 'default', 'priority')) AND tier_percent >= 1",
            name="tiers_known",
        ),
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
    created_at: Mapped[datetime] = now()
    updated_at: Mapped[datetime] = now()
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
    tier: Mapped[str] = mapped_column(Text, server_default="default")
    """The priority tier it asked for (``libs.contracts.tiers``)."""
    tier_percent: Mapped[int] = mapped_column(Integer, server_default="100")
    """The percentage of the offer's prices its tier costs: ``price`` (and, at per-token prices,
    what its usage costs) is that percentage of the offer's, rounded up."""
    served_tier: Mapped[str | None] = mapped_column(Text)
    """The tier its job was served at, as its worker reported it; when cheaper than ``tier`` it
    is what the request is billed at."""
    model: Mapped[str | None] = mapped_column(Text)
    """For an offer of a model: the model's name, and the version it was routed to."""
    model_version: Mapped[str | None] = mapped_column(Text)
    model_percents: Mapped[dict[str, int] | None] = mapped_column(JSONB)
    """``{"name@version": percent}`` of the fallback models it may be served by: served by one,
    it pays that percentage of its price (at its tier)."""
    deployment: Mapped[str | None] = mapped_column(Text)
    """The deployment (operator integration) whose answer it got, or the last one called."""


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
    updated_at: Mapped[datetime] = now()
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
    created_at: Mapped[datetime] = now()


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
    created_at: Mapped[datetime] = now()
