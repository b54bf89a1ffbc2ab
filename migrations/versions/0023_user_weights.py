"""Users' scheduling weights: under fair scheduling, a user of weight w is served w jobs per
turn where a user of weight 1 is served one

Revision ID: 0023
Revises: 0022
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0023"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("users", sa.Column("weight", sa.Integer(), server_default="1", nullable=False))
    op.create_check_constraint(op.f("ck_users_weight_range"), "users", "weight BETWEEN 1 AND 100")


def downgrade() -> None:
    op.drop_constraint(op.f("ck_users_weight_range"), "users", type_="check")
    op.drop_column("users", "weight")
