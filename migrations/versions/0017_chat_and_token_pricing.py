"""Chat requests and per-token prices: a request's messages and options, the prices it was
accepted at, what it cost the operator; an offer's prices per 1,000 tokens and output cap; usage
per offer with its cost

Revision ID: 0017
Revises: 0016
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("offers", sa.Column("input_price", sa.Numeric(20, 6), nullable=True))
    op.add_column("offers", sa.Column("output_price", sa.Numeric(20, 6), nullable=True))
    op.add_column("offers", sa.Column("max_output_tokens", sa.Integer(), nullable=True))
    op.create_check_constraint(
        "token_prices_not_negative",
        "offers",
        "coalesce(input_price, 0) >= 0 AND coalesce(output_price, 0) >= 0",
    )
    op.create_check_constraint(
        "max_output_tokens_positive",
        "offers",
        "max_output_tokens IS NULL OR max_output_tokens >= 1",
    )
    op.add_column("requests", sa.Column("messages", postgresql.JSONB(), nullable=True))
    op.add_column("requests", sa.Column("options", postgresql.JSONB(), nullable=True))
    op.add_column("requests", sa.Column("pricing", postgresql.JSONB(), nullable=True))
    op.add_column("requests", sa.Column("cost", sa.BigInteger(), nullable=True))
    op.add_column("usage_hourly", sa.Column("offer", sa.Text(), server_default="", nullable=False))
    op.add_column(
        "usage_hourly", sa.Column("cost", sa.BigInteger(), server_default="0", nullable=False)
    )
    op.drop_constraint(op.f("pk_usage_hourly"), "usage_hourly", type_="primary")
    op.create_primary_key(
        op.f("pk_usage_hourly"),
        "usage_hourly",
        ["hour", "user_id", "handler_id", "integration", "offer"],
    )


def downgrade() -> None:
    # Rows that differ only by offer fold into one.
    op.execute(
        """
        CREATE TEMP TABLE usage_folded ON COMMIT DROP AS
        SELECT hour, user_id, handler_id, integration, sum(requests) AS requests,
               sum(succeeded) AS succeeded, sum(failed) AS failed, sum(credits) AS credits,
               sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens
        FROM usage_hourly GROUP BY 1, 2, 3, 4
        """
    )
    op.execute("DELETE FROM usage_hourly")
    op.drop_constraint(op.f("pk_usage_hourly"), "usage_hourly", type_="primary")
    op.drop_column("usage_hourly", "cost")
    op.drop_column("usage_hourly", "offer")
    op.execute(
        """
        INSERT INTO usage_hourly (hour, user_id, handler_id, integration, requests, succeeded,
                                  failed, credits, input_tokens, output_tokens)
        SELECT * FROM usage_folded
        """
    )
    op.create_primary_key(
        op.f("pk_usage_hourly"), "usage_hourly", ["hour", "user_id", "handler_id", "integration"]
    )
    op.drop_column("requests", "cost")
    op.drop_column("requests", "pricing")
    op.drop_column("requests", "options")
    op.drop_column("requests", "messages")
    op.drop_constraint(op.f("ck_offers_max_output_tokens_positive"), "offers", type_="check")
    op.drop_constraint(op.f("ck_offers_token_prices_not_negative"), "offers", type_="check")
    op.drop_column("offers", "max_output_tokens")
    op.drop_column("offers", "output_price")
    op.drop_column("offers", "input_price")
