"""The catalog as it is in the database, as a ``CatalogSpec`` that ``apply_catalog`` accepts."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import yaml

from libs.catalog.spec import CatalogSpec
from libs.db import PgConnection

_HANDLERS = "SELECT id, credits, params, max_concurrency, enabled FROM handlers ORDER BY id"
_OFFERS = """
SELECT service, action, price, prompt_template, handler_id AS handler, create_qty, expiration,
       params, enabled
FROM offers ORDER BY service, action
"""
_DEALS = """
SELECT slug, offers, addons, price, price_modifier, addons_modifier, pipeline, enabled
FROM deals ORDER BY slug
"""


async def export_catalog(conn: PgConnection) -> CatalogSpec:
    """Every handler, offer and deal, enabled or not, read in the caller's transaction (a
    repeatable-read one gives them as of one instant)."""
    handlers = [dict(r) for r in await conn.fetch(_HANDLERS)]
    offers = [dict(r) for r in await conn.fetch(_OFFERS)]
    deals = [dict(r) for r in await conn.fetch(_DEALS)]
    return CatalogSpec.model_validate({"handlers": handlers, "offers": offers, "deals": deals})


def _number(value: Decimal) -> int | float:
    return int(value) if value == value.to_integral_value() else float(value)


def catalog_data(spec: CatalogSpec) -> dict[str, Any]:
    """``spec`` as plain data, leaving out what has its default value: what a catalog file
    holds."""
    data: dict[str, Any] = spec.model_dump(exclude_defaults=True)
    for deal in data.get("deals", []):
        for key in ("price_modifier", "addons_modifier"):
            if key in deal:
                deal[key] = _number(deal[key])
                if not deal[key]:
                    del deal[key]
        deal["offers"] = [
            step["offer"] if set(step) == {"offer"} else step for step in deal["offers"]
        ]
    return data


def catalog_yaml(spec: CatalogSpec) -> str:
    """``spec`` as a YAML catalog file."""
    return yaml.safe_dump(catalog_data(spec), sort_keys=False, allow_unicode=True)
