"""Handler and offer params lose the credentials they held: keys come from integrations now

Revision ID: 0016
Revises: 0015
"""

import json
import logging
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from libs.security.params import without_credentials

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("alembic.runtime.migration")


def upgrade() -> None:
    """A key (``api_key``, an ``Authorization`` header...) or an environment variable's name
    (``api_key_env``) in stored params is dropped: the catalog may no longer hold one, the
    worker refuses a job that carries one, and the admin views would show the catalog that
    holds it. The operator gives each key to an integration of the config ``worker``."""
    bind = op.get_bind()
    for table, key in (("handlers", "id"), ("offers", "id")):
        rows = bind.execute(sa.text(f"SELECT {key}, params FROM {table}")).all()
        for row_id, params in rows:
            stored = json.loads(params) if isinstance(params, str) else params
            cleaned, dropped = without_credentials(stored or {})
            if not dropped:
                continue
            log.warning("%s %s: dropped %s", table, row_id, ", ".join(dropped))
            bind.execute(
                sa.text(f"UPDATE {table} SET params = CAST(:params AS jsonb) WHERE {key} = :id"),
                {"params": json.dumps(cleaned), "id": row_id},
            )


def downgrade() -> None:
    # What was dropped is gone: the keys now live in the config ``worker``.
    pass
