"""Deals, request steps, per-step ledger rows and the expired status

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_STATUSES = "('pending', 'running', 'succeeded', 'failed', 'expired')"


def upgrade() -> None:
    op.create_table(
        "deals",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("slug", sa.Text(), nullable=False),
        sa.Column("price", sa.BigInteger(), nullable=True),
        sa.Column("price_modifier", sa.Numeric(5, 2), server_default="0", nullable=False),
        sa.Column("addons_modifier", sa.Numeric(5, 2), server_default="0", nullable=False),
        sa.Column("pipeline", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("offers", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "addons",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        sa.Column("enabled", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("price IS NULL OR price >= 0", name=op.f("ck_deals_price_not_negative")),
        sa.CheckConstraint(
            "price_modifier BETWEEN 0 AND 100 AND addons_modifier BETWEEN 0 AND 100",
            name=op.f("ck_deals_modifiers_are_percentages"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deals")),
        sa.UniqueConstraint("slug", name=op.f("uq_deals_slug")),
    )
    op.alter_column("requests", "offer_id", existing_type=sa.UUID(), nullable=True)
    op.add_column("requests", sa.Column("deal_id", sa.UUID(), nullable=True))
    op.create_foreign_key(
        op.f("fk_requests_deal_id_deals"), "requests", "deals", ["deal_id"], ["id"]
    )
    op.create_check_constraint(
        op.f("ck_requests_one_target"), "requests", "num_nonnulls(offer_id, deal_id) = 1"
    )
    op.drop_constraint(op.f("ck_requests_status"), "requests", type_="check")
    op.create_check_constraint(op.f("ck_requests_status"), "requests", f"status IN {_STATUSES}")
    op.create_index(
        "ix_requests_finished",
        "requests",
        ["finished_at"],
        postgresql_where=sa.text("status IN ('succeeded', 'failed')"),
    )

    op.create_table(
        "request_steps",
        sa.Column("request_id", sa.UUID(), nullable=False),
        sa.Column("idx", sa.Integer(), nullable=False),
        sa.Column("offer_id", sa.UUID(), nullable=False),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("mode", sa.Text(), nullable=True),
        sa.Column("price", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.Text(), server_default="pending", nullable=False),
        sa.Column("attempt", sa.Integer(), server_default="1", nullable=False),
        sa.Column("prompt", sa.Text(), nullable=True),
        sa.Column("results", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("output", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("role IN ('primary', 'addon')", name=op.f("ck_request_steps_role")),
        sa.CheckConstraint(
            "mode IS NULL OR mode IN ('overwrite', 'extend', 'pass_through')",
            name=op.f("ck_request_steps_mode"),
        ),
        sa.CheckConstraint(f"status IN {_STATUSES}", name=op.f("ck_request_steps_status")),
        sa.CheckConstraint("price >= 0", name=op.f("ck_request_steps_price_not_negative")),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["requests.id"],
            name=op.f("fk_request_steps_request_id_requests"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["offer_id"], ["offers.id"], name=op.f("fk_request_steps_offer_id_offers")
        ),
        sa.PrimaryKeyConstraint("request_id", "idx", name=op.f("pk_request_steps")),
    )

    op.add_column("credit_ledger", sa.Column("step", sa.Integer(), nullable=True))
    op.drop_constraint(op.f("uq_credit_ledger_request_kind"), "credit_ledger", type_="unique")
    op.create_index(
        "uq_credit_ledger_request_step_kind",
        "credit_ledger",
        ["request_id", sa.text("coalesce(step, -1)"), "kind"],
        unique=True,
    )


def downgrade() -> None:
    op.drop_index("uq_credit_ledger_request_step_kind", table_name="credit_ledger")
    op.execute("DELETE FROM credit_ledger WHERE step IS NOT NULL")
    op.create_unique_constraint(
        op.f("uq_credit_ledger_request_kind"), "credit_ledger", ["request_id", "kind"]
    )
    op.drop_column("credit_ledger", "step")
    op.drop_table("request_steps")
    op.drop_index("ix_requests_finished", table_name="requests")
    op.drop_constraint(op.f("ck_requests_status"), "requests", type_="check")
    op.create_check_constraint(
        op.f("ck_requests_status"),
        "requests",
        "status IN ('pending', 'running', 'succeeded', 'failed')",
    )
    op.drop_constraint(op.f("ck_requests_one_target"), "requests", type_="check")
    op.drop_constraint(op.f("fk_requests_deal_id_deals"), "requests", type_="foreignkey")
    op.drop_column("requests", "deal_id")
    op.alter_column("requests", "offer_id", existing_type=sa.UUID(), nullable=False)
    op.drop_table("deals")
