from __future__ import annotations

from typing import Any

import asyncpg

_ENABLED_OFFERS = """
SELECT o.id, o.service, o.action, o.price, o.prompt_template, o.handler_id, o.create_qty,
       h.params || o.params AS params, o.input_price, o.output_price, o.max_output_tokens,
       o.aliases, o.files, o.created_at, o.tiers, o.default_tier
FROM offers o JOIN handlers h ON h.id = o.handler_id
WHERE o.enabled AND h.enabled
"""


async def enabled_offers(pool: asyncpg.Pool[Any]) -> list[asyncpg.Record]:
    return await pool.fetch(_ENABLED_OFFERS)


_ENABLED_DEALS = """
SELECT id, slug, price, price_modifier, addons_modifier, pipeline, offers, addons
FROM deals WHERE enabled ORDER BY slug
"""


async def enabled_deals(pool: asyncpg.Pool[Any]) -> list[asyncpg.Record]:
    return await pool.fetch(_ENABLED_DEALS)
