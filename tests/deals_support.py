"""A catalog with deals for the tests: the demo offers, pipeline stages, and deals over them."""

from __future__ import annotations

from typing import Any

import asyncpg

from libs.catalog import CatalogSpec, apply_catalog
from tests.support import DEMO_CATALOG


def _stage(action: str, template: str, price: int) -> dict[str, Any]:
    return {
        "service": "stage",
        "action": action,
        "price": price,
        "prompt_template": template,
        "handler": "echo.text",
    }


DEALS_CATALOG = CatalogSpec.model_validate(
    {
        "handlers": [h.model_dump() for h in DEMO_CATALOG.handlers],
        "offers": [o.model_dump() for o in DEMO_CATALOG.offers]
        + [
            _stage("a", "A[{text}]", 10),
            _stage("b", "B[{input}]", 20),
            _stage("c", "C[{input}|{text}]", 30),
        ],
        "deals": [
            {
                # demo/echo (2) + demo/greet (3) = 5, less 10 % (0.5 rounded down to 0) = 5;
                # demo/sleep (5) as an add-on, less 50 % (2.5 rounded down to 2) = 3.
                "slug": "bundle",
                "offers": ["demo/echo", "demo/greet"],
                "price_modifier": 10,
                "addons": ["demo/sleep", "demo/ask"],
                "addons_modifier": 50,
            },
            {
                "slug": "chain",
                "pipeline": True,
                "offers": [
                    {"offer": "stage/a", "mode": "overwrite"},
                    {"offer": "stage/b", "mode": "extend"},
                    {"offer": "stage/c", "mode": "pass_through"},
                ],
                "price": 30,
            },
            {
                "slug": "broken-chain",
                "pipeline": True,
                "offers": ["stage/a", "demo/flaky", "stage/c"],
                "price_modifier": 0,
            },
        ],
    }
)


async def load_deals_catalog(pool: asyncpg.Pool[Any]) -> None:
    async with pool.acquire() as conn:
        await apply_catalog(conn, DEALS_CATALOG)
