"""Priority tiers: the tiers an offer sells (a percentage of its price each) and its default
one; the tier a request asked for, at what percentage it was priced, and the tier it was served at

Revision ID: 0022
Revises: 0021
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TIER = "IN ('flex', 'default', 'priority')"


def upgrade() -> None:
    op.add_column(
        "offers",
        sa.Column(
            "tiers",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
    )
    op.add_column(
        "offers", sa.Column("default_tier", sa.Text(), server_default="default", nullable=False)
    )
    op.create_check_constraint(
        op.f("ck_offers_default_tier_known"), "offers", f"default_tier {_TIER}"
    )
    op.add_column(
        "requests", sa.Column("tier", sa.Text(), server_default="default", nullable=False)
    )
    op.add_column(
        "requests",
        sa.Column("tier_percent", sa.Integer(), server_default="100", nullable=False),
    )
    op.add_column("requests", sa.Column("served_tier", sa.Text(), nullable=True))
    op.create_check_constraint(
        op.f("ck_requests_tiers_known"),
        "requests",
        f"tier {_TIER} AND (served_tier IS NULL OR served_tier {_TIER}) AND tier_percent >= 1",
    )


def downgrade() -> None:
    op.drop_constraint(op.f("ck_requests_tiers_known"), "requests", type_="check")
    op.drop_column("requests", "served_tier")
    op.drop_column("requests", "tier_percent")
    op.drop_column("requests", "tier")
    op.drop_constraint(op.f("ck_offers_default_tier_known"), "offers", type_="check")
    op.drop_column("offers", "default_tier")
    op.drop_column("offers", "tiers")
