"""The ledger's release: the part of a delivered request's reservation it did not cost

Revision ID: 0015
Revises: 0014
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_constraint(op.f("ck_credit_ledger_kind"), "credit_ledger", type_="check")
    op.create_check_constraint(
        "kind", "credit_ledger", "kind IN ('grant', 'reserve', 'settle', 'release', 'refund')"
    )


def downgrade() -> None:
    # A release returned credits to the balance, as a refund does.
    op.execute("UPDATE credit_ledger SET kind = 'refund' WHERE kind = 'release'")
    op.drop_constraint(op.f("ck_credit_ledger_kind"), "credit_ledger", type_="check")
    op.create_check_constraint(
        "kind", "credit_ledger", "kind IN ('grant', 'reserve', 'settle', 'refund')"
    )
