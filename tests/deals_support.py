"""A catalog with deals for the tests: the demo offers, pipeline stages, and deals over them."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from libs.catalog import CatalogSpec, apply_catalog
from libs.contracts import TASKS_STREAM
from services.api.auth.service import Principal
from services.api.catalog.service import OfferCatalog
from services.api.deals import service as deals_service
from services.api.deals.service import DealCatalog, DealSubmission
from services.api.requests import repository as requests_repository
from services.api.requests import service as requests_service
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


async def submit_offer(
    pool: asyncpg.Pool[Any], user_id: uuid.UUID, service: str, action: str, text: str
) -> uuid.UUID:
    """A single-offer request written by the API's submit statement, as ``POST /svc`` does."""
    offer = await OfferCatalog(pool, refresh_s=60).get(service, action)
    assert offer is not None
    new = requests_repository.NewRequest(
        id=uuid.uuid4(),
        user_id=user_id,
        offer_id=offer.id,
        inputs={"text": text},
        prompt=offer.template.render({"text": text}),
        price=offer.price,
        traceparent=requests_service.new_traceparent(),
        payload="{}",
    )
    if not await requests_repository.insert_submission(pool, new, stream=TASKS_STREAM):
        raise AssertionError("a fresh id was not created")
    return new.id


async def submit_deal(
    pool: asyncpg.Pool[Any],
    user_id: uuid.UUID,
    slug: str,
    inputs: dict[str, str],
    addons: list[str] | None = None,
    key: str | None = None,
) -> DealSubmission:
    """A deal's request written by the API's deal submit statement, as ``POST /deal`` does."""
    deal = await DealCatalog(pool, OfferCatalog(pool, refresh_s=60), refresh_s=60).get(slug)
    assert deal is not None
    return await deals_service.submit_deal(
        pool,
        user=Principal(id=user_id, name="tester", role="user"),
        deal=deal,
        inputs=dict(inputs),
        addon_names=addons or [],
        idempotency_key=key,
        traceparent=None,
        max_prompt_chars=10_000,
        max_unfinished=0,
        stream=TASKS_STREAM,
    )
