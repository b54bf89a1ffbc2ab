"""Finished webhook deliveries indexed by status and when they finished: recon reads the ones
given up lately and deletes the ones past retention without scanning the whole table

Revision ID: 0020
Revises: 0019
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # When a delivery finished: its last attempt, or its delivery, or when it was (re)queued if
    # it never was attempted since (an endpoint disabled fails its pending deliveries unsent).
    # services/recon/webhooks/repository.py spells the same expression, so that it is used.
    op.execute(
        "CREATE INDEX ix_webhook_deliveries_finished ON webhook_deliveries "
        "(status, (greatest(retry_from, last_attempt_at, delivered_at))) "
        "WHERE status <> 'pending'"
    )


def downgrade() -> None:
    op.execute("DROP INDEX ix_webhook_deliveries_finished")
