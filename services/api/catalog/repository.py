from __future__ import annotations

from typing import Any

import asyncpg

_MODEL_COLUMNS = """m.name, m.version, m.description, m.handler_id, m.provider_model,
    m.context_window, m.max_output_tokens, m.input_modalities, m.output_modalities, m.tokenizer,
    m.deployments, m.max_attempts, m.cooldown_s, m.idempotent"""

# An offer of a model gets the version it is pinned to, else the model's default: switching the
# default takes effect at the next reload, for the requests submitted after it. Its fallbacks
# likewise, in order, each with its percentage.
_ENABLED_OFFERS = f"""
SELECT o.id, o.service, o.action, o.price, o.prompt_template, o.handler_id, o.create_qty,
       h.params || o.params AS params, o.input_price, o.output_price, o.max_output_tokens,
       o.aliases, o.files, o.created_at, o.tiers, o.default_tier, o.model AS model_name,
       to_jsonb(m) AS model,
       (SELECT coalesce(jsonb_agg(jsonb_build_object('percent', (x.f ->> 'percent')::int,
                                                     'model', to_jsonb(fm)) ORDER BY x.ord),
                        '[]'::jsonb)
        FROM jsonb_array_elements(o.fallbacks) WITH ORDINALITY AS x(f, ord)
        JOIN LATERAL (
            SELECT {_MODEL_COLUMNS} FROM models m
            WHERE m.enabled AND m.name = split_part(x.f ->> 'model', '@', 1)
              AND (m.version = nullif(split_part(x.f ->> 'model', '@', 2), '')
                   OR (split_part(x.f ->> 'model', '@', 2) = '' AND m.is_default))
        ) fm ON true) AS fallbacks
FROM offers o JOIN handlers h ON h.id = o.handler_id
LEFT JOIN LATERAL (
    SELECT {_MODEL_COLUMNS}
    FROM models m
    WHERE m.enabled AND m.name = o.model
      AND (m.version = o.model_version OR (o.model_version IS NULL AND m.is_default))
) m ON true
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
