"""Unfinished requests by last update: the completion loop's sweep order

Revision ID: 0009
Revises: 0007
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_requests_unfinished_updated",
        "requests",
        ["updated_at", "id"],
        unique=False,
        postgresql_where=sa.text("status IN ('pending', 'running')"),
    )


def downgrade() -> None:
    op.drop_index(
        "ix_requests_unfinished_updated",
        table_name="requests",
        postgresql_where=sa.text("status IN ('pending', 'running')"),
    )
