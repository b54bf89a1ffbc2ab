"""A catalog with deals for the tests: the demo offers, pipeline stages, and deals over them."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Sequence
from typing import Any

import asyncpg

from libs.catalog import CatalogSpec, apply_catalog
from libs.outcomes import StepEnded, StepStarted, by_request, record_request_steps
from services.api import submission
from services.api.auth.service import Principal
from services.api.catalog.deals import DealCatalog
from services.api.catalog.service import OfferCatalog
from services.api.deals import service as deals_service
from services.api.submission import Order, Submission, Submitter
from services.api.submission.batcher import SubmitBatcher
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


async def submit_order(
    pool: asyncpg.Pool[Any],
    user_id: uuid.UUID,
    order: Order,
    *,
    key: str | None = None,
    webhook_url: str | None = None,
) -> Submission:
    """Submit ``order`` through the API's submission core (its group commit included), as
    every front door does."""
    batcher = SubmitBatcher(pool, max_batch=100, flushers=1, on_commit=lambda: None)
    running = asyncio.create_task(batcher.run())
    try:
        submitter = Submitter(pool, batcher, max_prompt_chars=10_000, max_unfinished=lambda: 0)
        return await submitter.submit(
            user=Principal(id=user_id, name="tester", role="user"),
            order=order,
            idempotency_key=key,
            traceparent=None,
            webhook_url=webhook_url,
        )
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running


async def submit_offer(
    pool: asyncpg.Pool[Any],
    user_id: uuid.UUID,
    service: str,
    action: str,
    text: str,
    *,
    webhook_url: str | None = None,
) -> uuid.UUID:
    """A new single-offer request, submitted as ``POST /svc`` does."""
    offer = await OfferCatalog(pool, refresh_s=60).get(service, action)
    assert offer is not None
    order = submission.offer_order(offer, {"text": text})
    submitted = await submit_order(
        pool, user_id, order, key=str(uuid.uuid4()), webhook_url=webhook_url
    )
    assert not submitted.duplicate
    return submitted.id


async def submit_deal(
    pool: asyncpg.Pool[Any],
    user_id: uuid.UUID,
    slug: str,
    inputs: dict[str, str],
    addons: list[str] | None = None,
    key: str | None = None,
    webhook_url: str | None = None,
) -> Submission:
    """A deal's request, submitted as ``POST /deal`` does."""
    deal = await DealCatalog(pool, OfferCatalog(pool, refresh_s=60), refresh_s=60).get(slug)
    assert deal is not None
    order = deals_service.order_for(deal, dict(inputs), addons or [])
    return await submit_order(pool, user_id, order, key=key, webhook_url=webhook_url)


async def record_steps(
    pool: asyncpg.Pool[Any],
    *,
    started: Sequence[StepStarted] = (),
    ended: Sequence[StepEnded] = (),
) -> list[asyncpg.Record]:
    """Step reports written as the results consumer writes them: a transaction per request."""
    rows: list[asyncpg.Record] = []
    for request_id, starts, ends in by_request(started=started, ended=ended):
        async with pool.acquire() as conn, conn.transaction():
            rows += await record_request_steps(conn, request_id, started=starts, ended=ends)
    return rows
