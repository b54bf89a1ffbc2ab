"""What is sold: handlers, the offers on them, and deals that chain offers; and the prompt
templates the chat gateway fills."""

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from libs.db.models._base import Base, now


class Handler(Base):
    __tablename__ = "handlers"
    __table_args__ = (CheckConstraint("id ~ '^[a-z0-9_]+\\.[a-z0-9_]+$'", name="id_format"),)

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    """``module.method``, the key of the worker's handler registry."""
    credits: Mapped[int] = mapped_column(BigInteger, server_default="0")
    params: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    max_concurrency: Mapped[int | None] = mapped_column(Integer)
    enabled: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    created_at: Mapped[datetime] = now()


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
        CheckConstraint(
            "default_tier IN ('flex', 'default', 'priority')", name="default_tier_known"
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
    created_at: Mapped[datetime] = now()
    input_price: Mapped[Decimal | None] = mapped_column(Numeric(20, 6))
    """Credits per 1,000 input tokens, beside ``price`` (null: input tokens cost nothing)."""
    output_price: Mapped[Decimal | None] = mapped_column(Numeric(20, 6))
    """Credits per 1,000 output tokens, beside ``price``."""
    max_output_tokens: Mapped[int | None] = mapped_column(Integer)
    """The most output tokens a request may ask for, and what is reserved when it names none."""
    aliases: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default=text("'{}'::text[]"))
    """Other names of the offer at the OpenAI-compatible door. No two enabled offers share one:
    the constraint trigger ``offers_aliases_unique`` (migration 0018) refuses it."""
    tiers: Mapped[dict[str, int]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    """The priority tiers it sells beside ``default`` (``flex``, ``priority``), each at a
    percentage of its prices: ``{"flex": 50, "priority": 200}``."""
    default_tier: Mapped[str] = mapped_column(Text, server_default="default")
    """The tier of a request that names none."""
    model: Mapped[str | None] = mapped_column(Text)
    """The model it runs (``libs.db.models.catalog.Model``): its requests are routed to the
    model's deployments and checked against its context window."""
    model_version: Mapped[str | None] = mapped_column(Text)
    """A pinned version of ``model``; null: the model's default version when submitted."""
    fallbacks: Mapped[list[Any]] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    """``[{"model": "name[@version]", "percent": p}]``: models that serve its requests, in
    order, when every deployment of ``model`` failed without an answer."""


class Model(Base):
    """A model version and the deployments (operator integrations) that serve it."""

    __tablename__ = "models"
    __table_args__ = (
        CheckConstraint(
            "context_window >= 1 AND max_output_tokens >= 1 "
            "AND max_output_tokens <= context_window",
            name="token_limits",
        ),
        Index("uq_models_default", "name", unique=True, postgresql_where=text("is_default")),
    )

    name: Mapped[str] = mapped_column(Text, primary_key=True)
    version: Mapped[str] = mapped_column(Text, primary_key=True)
    description: Mapped[str] = mapped_column(Text, server_default="")
    handler_id: Mapped[str] = mapped_column(ForeignKey("handlers.id"))
    """The provider kind: the handler that calls it (``openai.chat``)."""
    provider_model: Mapped[str] = mapped_column(Text)
    """The name the provider knows it by."""
    context_window: Mapped[int] = mapped_column(Integer)
    max_output_tokens: Mapped[int] = mapped_column(Integer)
    input_modalities: Mapped[list[str]] = mapped_column(
        ARRAY(Text), server_default=text("'{text}'::text[]")
    )
    output_modalities: Mapped[list[str]] = mapped_column(
        ARRAY(Text), server_default=text("'{text}'::text[]")
    )
    tokenizer: Mapped[str | None] = mapped_column(Text)
    """The tiktoken encoding that counts its tokens; null: the conservative estimate."""
    deployments: Mapped[list[Any]] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    """``[{"integration", "weight", "max_concurrency", "model"}]`` (``libs.contracts.models``)."""
    max_attempts: Mapped[int] = mapped_column(Integer, server_default="4")
    cooldown_s: Mapped[float] = mapped_column(Float, server_default="30")
    idempotent: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    is_default: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    """The version an offer that pins none is routed to; one per name."""
    enabled: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    created_at: Mapped[datetime] = now()


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
    created_at: Mapped[datetime] = now()


class PromptTemplate(Base):
    """A named prompt with ``{variables}`` (``libs.catalog.prompt_templates``), filled by name;
    ``usage_count`` is runtime data, never part of the catalog file."""

    __tablename__ = "prompt_templates"
    __table_args__ = (
        CheckConstraint("name ~ '^[a-z0-9][a-z0-9_-]*$'", name="name_format"),
        CheckConstraint("usage_count >= 0", name="usage_count_not_negative"),
    )

    name: Mapped[str] = mapped_column(Text, primary_key=True)
    description: Mapped[str] = mapped_column(Text, server_default="")
    category: Mapped[str] = mapped_column(Text, server_default="general")
    template: Mapped[str] = mapped_column(Text)
    """Plain ``{name}`` substitution only (``libs.catalog.template``)."""
    example_input: Mapped[dict[str, str]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    """A value for each of the template's variables: it always renders."""
    example_output: Mapped[str] = mapped_column(Text, server_default="")
    tags: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default=text("'{}'::text[]"))
    active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    usage_count: Mapped[int] = mapped_column(BigInteger, server_default="0")
    """How many times it was filled; counted in the statement that reads it."""
    created_at: Mapped[datetime] = now()
    updated_at: Mapped[datetime] = now()
