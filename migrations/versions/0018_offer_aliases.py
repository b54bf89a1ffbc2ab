"""Offer aliases: other names an offer goes by at the OpenAI-compatible door, each naming one
enabled offer

Revision ID: 0018
Revises: 0017
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "offers",
        sa.Column(
            "aliases",
            postgresql.ARRAY(sa.Text()),
            server_default=sa.text("'{}'::text[]"),
            nullable=False,
        ),
    )
    # No index can say "no alias in two enabled offers' arrays", so a constraint trigger does.
    # Writers of aliases take one lock until they commit: under read committed, each query of
    # the function sees what committed before it, so two writers cannot both miss the other.
    # It is deferrable: a catalog applied at once may move an alias from one offer to another.
    op.execute(
        """
        CREATE FUNCTION relai_offer_aliases_unique() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            mine offers%ROWTYPE;
            taken record;
        BEGIN
            PERFORM pg_advisory_xact_lock(27422272603252083);
            SELECT * INTO mine FROM offers WHERE id = NEW.id AND enabled;
            IF NOT FOUND THEN
                RETURN NULL;
            END IF;
            SELECT alias, o.service || '/' || o.action AS offer INTO taken
            FROM offers o CROSS JOIN LATERAL unnest(o.aliases) AS alias
            WHERE o.enabled AND o.id <> mine.id AND alias = ANY (mine.aliases)
            ORDER BY 1, 2 LIMIT 1;
            IF FOUND THEN
                RAISE EXCEPTION USING
                    ERRCODE = 'unique_violation',
                    CONSTRAINT = 'offers_aliases_unique',
                    MESSAGE = format(
                        'offer %s/%s cannot have the alias %L: the offer %s has it',
                        mine.service, mine.action, taken.alias, taken.offer
                    );
            END IF;
            RETURN NULL;
        END $$
        """
    )
    op.execute(
        """
        CREATE CONSTRAINT TRIGGER offers_aliases_unique
        AFTER INSERT OR UPDATE OF aliases, enabled ON offers
        DEFERRABLE INITIALLY IMMEDIATE
        FOR EACH ROW WHEN (NEW.enabled AND cardinality(NEW.aliases) > 0)
        EXECUTE FUNCTION relai_offer_aliases_unique()
        """
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER offers_aliases_unique ON offers")
    op.execute("DROP FUNCTION relai_offer_aliases_unique()")
    op.drop_column("offers", "aliases")
