"""Apply a catalog idempotently: applying the same file twice changes nothing."""

from __future__ import annotations

import uuid

from libs.catalog.spec import CatalogSpec
from libs.db import PgConnection

_UPSERT_HANDLER = """
INSERT INTO handlers (id, credits, params, max_concurrency, enabled)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (id) DO UPDATE SET
    credits = EXCLUDED.credits, params = EXCLUDED.params,
    max_concurrency = EXCLUDED.max_concurrency, enabled = EXCLUDED.enabled
"""

_UPSERT_OFFER = """
INSERT INTO offers (id, service, action, price, prompt_template, handler_id, create_qty,
                    expiration, params, enabled)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
ON CONFLICT (service, action) DO UPDATE SET
    price = EXCLUDED.price, prompt_template = EXCLUDED.prompt_template,
    handler_id = EXCLUDED.handler_id, create_qty = EXCLUDED.create_qty,
    expiration = EXCLUDED.expiration, params = EXCLUDED.params, enabled = EXCLUDED.enabled
"""


async def apply_catalog(conn: PgConnection, spec: CatalogSpec) -> None:
    """Upsert every handler and offer of ``spec`` in one transaction."""
    async with conn.transaction():
        await conn.executemany(
            _UPSERT_HANDLER,
            [(h.id, h.credits, h.params, h.max_concurrency, h.enabled) for h in spec.handlers],
        )
        await conn.executemany(
            _UPSERT_OFFER,
            [
                (
                    uuid.uuid4(),
                    o.service,
                    o.action,
                    o.price,
                    o.prompt_template,
                    o.handler,
                    o.create_qty,
                    o.expiration,
                    o.params,
                    o.enabled,
                )
                for o in spec.offers
            ],
        )
