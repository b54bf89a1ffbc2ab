"""A user's Idempotency-Key names one request: reused with another body, it is refused

Revision ID: 0010
Revises: 0009
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("requests", sa.Column("idempotency_key", sa.Text(), nullable=True))
    op.create_index(
        "ix_requests_user_idempotency_key",
        "requests",
        ["user_id", "idempotency_key"],
        unique=True,
        postgresql_where=sa.text("idempotency_key IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index(
        "ix_requests_user_idempotency_key",
        table_name="requests",
        postgresql_where=sa.text("idempotency_key IS NOT NULL"),
    )
    op.drop_column("requests", "idempotency_key")
