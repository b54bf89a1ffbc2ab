"""Usage per hour, user, handler and integration, aggregated by recon

Revision ID: 0011
Revises: 0010
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "usage_hourly",
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("user_id", postgresql.UUID(), nullable=False),
        sa.Column("handler_id", sa.Text(), nullable=False),
        sa.Column("integration", sa.Text(), server_default="", nullable=False),
        sa.Column("requests", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("succeeded", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("failed", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("credits", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("input_tokens", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("output_tokens", sa.BigInteger(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_usage_hourly_user_id_users")
        ),
        sa.PrimaryKeyConstraint(
            "hour", "user_id", "handler_id", "integration", name=op.f("pk_usage_hourly")
        ),
    )
    op.create_table(
        "recon_marks",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_recon_marks")),
    )


def downgrade() -> None:
    op.drop_table("recon_marks")
    op.drop_table("usage_hourly")
