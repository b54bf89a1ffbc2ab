"""A deal's steps can be cancelled

Revision ID: 0014
Revises: 0013
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_constraint(op.f("ck_request_steps_status"), "request_steps", type_="check")
    op.create_check_constraint(
        "status",
        "request_steps",
        "status IN ('pending', 'running', 'succeeded', 'failed', 'expired', 'cancelled')",
    )


def downgrade() -> None:
    op.execute("UPDATE request_steps SET status = 'failed' WHERE status = 'cancelled'")
    op.drop_constraint(op.f("ck_request_steps_status"), "request_steps", type_="check")
    op.create_check_constraint(
        "status",
        "request_steps",
        "status IN ('pending', 'running', 'succeeded', 'failed', 'expired')",
    )
