"""The catalog as it is in the database, as a ``CatalogSpec`` that ``apply_catalog`` accepts."""

from __future__ import annotations

from typing import Any

import yaml

from libs.catalog import prompt_store
from libs.catalog.spec import CatalogSpec
from libs.catalog.values import json_number
from libs.db import PgConnection

_HANDLERS = "SELECT id, credits, params, max_concurrency, enabled FROM handlers ORDER BY id"
_OFFERS = """
SELECT service, action, price, prompt_template, handler_id AS handler, create_qty, expiration,
       params, enabled, input_price, output_price, max_output_tokens, aliases, files, tiers,
       default_tier, CASE WHEN model IS NOT NULL THEN model || coalesce('@' || model_version, '')
       END AS model, fallbacks
FROM offers ORDER BY service, action
"""
_MODELS = """
SELECT name, version, description, handler_id AS handler, provider_model, context_window,
       max_output_tokens, input_modalities, output_modalities, tokenizer, deployments,
       max_attempts, cooldown_s, idempotent, is_default AS default, enabled
FROM models ORDER BY name, version
"""
_DEALS = """
SELECT slug, offers, addons, price, price_modifier, addons_modifier, pipeline, enabled
FROM deals ORDER BY slug
"""


async def export_catalog(conn: PgConnection) -> CatalogSpec:
    """Every handler, model, offer, deal and prompt template, enabled (active) or not, read in
    the caller's transaction (a repeatable-read one gives them as of one instant). A template's
    ``usage_count`` is runtime data, left out."""
    handlers = [dict(r) for r in await conn.fetch(_HANDLERS)]
    offers = [dict(r) for r in await conn.fetch(_OFFERS)]
    deals = [dict(r) for r in await conn.fetch(_DEALS)]
    models = [dict(r) for r in await conn.fetch(_MODELS)]
    templates = [dict(r) for r in await conn.fetch(prompt_store.SELECT)]
    return CatalogSpec.model_validate(
        {
            "handlers": handlers,
            "models": models,
            "offers": offers,
            "deals": deals,
            "prompt_templates": templates,
        }
    )


def catalog_data(spec: CatalogSpec) -> dict[str, Any]:
    """``spec`` as plain data, leaving out what has its default value: what a catalog file
    holds."""
    data: dict[str, Any] = spec.model_dump(exclude_defaults=True)
    for offer in data.get("offers", []):
        for key in ("input_price", "output_price"):
            # A field with a serializer is dumped even at its default.
            if offer.get(key) is None:
                offer.pop(key, None)
            else:
                offer[key] = json_number(offer[key])
    for deal in data.get("deals", []):
        for key in ("price_modifier", "addons_modifier"):
            if key in deal:
                deal[key] = json_number(deal[key])
                if not deal[key]:
                    del deal[key]
        deal["offers"] = [
            step["offer"] if set(step) == {"offer"} else step for step in deal["offers"]
        ]
    return data


def catalog_yaml(spec: CatalogSpec) -> str:
    """``spec`` as a YAML catalog file."""
    return yaml.safe_dump(catalog_data(spec), sort_keys=False, allow_unicode=True)
