"""Requests may end cancelled; pending requests by creation time (queue positions)

Revision ID: 0007
Revises: 0006
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_constraint(op.f("ck_requests_status"), "requests", type_="check")
    op.create_check_constraint(
        "status",
        "requests",
        "status IN ('pending', 'running', 'succeeded', 'failed', 'expired', 'cancelled')",
    )
    op.create_index(
        "ix_requests_pending",
        "requests",
        ["created_at"],
        unique=False,
        postgresql_where=sa.text("status = 'pending'"),
    )


def downgrade() -> None:
    op.drop_index(
        "ix_requests_pending", table_name="requests", postgresql_where=sa.text("status = 'pending'")
    )
    op.drop_constraint(op.f("ck_requests_status"), "requests", type_="check")
    op.create_check_constraint(
        "status", "requests", "status IN ('pending', 'running', 'succeeded', 'failed', 'expired')"
    )
