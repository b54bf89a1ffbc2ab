"""Per-token prices against the real Postgres: the outcome statement's SQL cost agrees with the
Python one; whatever the prices, usage and ending, a request's reservation is exactly what it
settles, releases and refunds, and no balance goes negative; a delivered request records what
it cost the operator; and no deal can name a token-priced offer, however the catalog is
written."""

import asyncio
import uuid
from collections.abc import Coroutine, Iterator
from decimal import Decimal
from typing import Any, TypeVar

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from libs import accounts
from libs.catalog import (
    CatalogSpec,
    DealSpec,
    OfferSpec,
    TokenPricedDealError,
    TokenPrices,
    apply_catalog,
    input_token_bound,
    token_cost,
    token_cost_sql,
    upsert_deal,
    upsert_offer,
)
from libs.db import create_pool
from libs.outcomes import Ended, Started, expire_due, record_outcomes
from services.api import submission
from services.api.catalog.service import OfferCatalog
from services.api.errors import InsufficientCredits
from services.api.submission import Order, charged_when_cancelled_streaming
from tests.deals_support import submit_order
from tests.support import ServerUrls, create_user

T = TypeVar("T")

PRICES = st.one_of(
    st.just(Decimal(0)),
    st.decimals(min_value=0, max_value=50, places=6),
    st.decimals(min_value=0, max_value=10**9, places=6),
)
TOKENS = st.one_of(
    st.integers(min_value=0, max_value=5000), st.integers(min_value=0, max_value=2**62)
)
TEXTS = st.text(alphabet="ab é€\U0001f600", max_size=30)

HANDLER = {"id": "echo.text", "credits": 7}


def _offer(**prices: Any) -> dict[str, Any]:
    return {
        "service": "tok",
        "action": "words",
        "price": 0,
        "prompt_template": "{text}",
        "handler": "echo.text",
        "expiration": 3600,
        **prices,
    }


class _Db:
    """A loop and a pool of its own, for hypothesis tests that run many examples in one test."""

    def __init__(self, servers: ServerUrls) -> None:
        self.loop = asyncio.new_event_loop()
        self.pool: asyncpg.Pool[Any] = self.run(
            create_pool(servers.database_url, min_size=1, max_size=2)
        )

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    def close(self) -> None:
        self.run(self.pool.close())
        self.loop.close()


@pytest.fixture
def db(servers: ServerUrls) -> Iterator[_Db]:
    opened = _Db(servers)
    yield opened
    opened.close()


_HYPOTHESIS = settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def test_python_and_sql_costs_agree(db: _Db) -> None:
    query = f"SELECT {token_cost_sql('$1::jsonb', '$2::jsonb')}"

    @_HYPOTHESIS
    @given(
        base=st.integers(min_value=0, max_value=2**53),
        input_per_1k=PRICES,
        output_per_1k=PRICES,
        input_tokens=st.none() | TOKENS,
        output_tokens=st.none() | TOKENS,
    )
    def agree(
        base: int,
        input_per_1k: Decimal,
        output_per_1k: Decimal,
        input_tokens: int | None,
        output_tokens: int | None,
    ) -> None:
        prices = TokenPrices(base, input_per_1k, output_per_1k)
        usage = {
            k: v
            for k, v in (("input_tokens", input_tokens), ("output_tokens", output_tokens))
            if v is not None
        }
        in_sql = db.run(db.pool.fetchval(query, prices.to_json(), usage))
        assert in_sql == token_cost(prices, input_tokens or 0, output_tokens or 0)

    agree()


async def test_the_sql_cost_counts_no_usage_and_negative_counts_as_nothing(
    db_pool: "asyncpg.Pool[Any]",
) -> None:
    query = f"SELECT {token_cost_sql('$1::jsonb', '$2::jsonb')}"
    pricing = TokenPrices(5, Decimal("0.5"), Decimal(2)).to_json()
    assert await db_pool.fetchval(query, pricing, None) == 5
    assert await db_pool.fetchval(query, pricing, {"input_tokens": -9, "output_tokens": 1}) == 6


_OUTCOMES = st.sampled_from(
    ["succeeded", "failed", "cancelled", "cancelled_streamed", "expired", "succeeded_expired"]
)

_LEDGER = """
SELECT coalesce(sum(amount) FILTER (WHERE kind = 'reserve'), 0) AS reserve,
       coalesce(sum(amount) FILTER (WHERE kind = 'settle'), 0) AS settle,
       coalesce(sum(amount) FILTER (WHERE kind = 'release'), 0) AS release,
       coalesce(sum(amount) FILTER (WHERE kind = 'refund'), 0) AS refund
FROM credit_ledger WHERE request_id = $1
"""
_WALLET = """
SELECT u.balance, u.reserved,
       sum(l.amount) FILTER (WHERE l.kind IN ('grant', 'release', 'refund'))
     - coalesce(sum(l.amount) FILTER (WHERE l.kind = 'reserve'), 0) AS ledger_balance
FROM users u JOIN credit_ledger l ON l.user_id = u.id WHERE u.id = $1 GROUP BY u.id
"""


def test_a_reservation_is_what_its_request_settles_releases_and_refunds(db: _Db) -> None:
    async def setup() -> None:
        async with db.pool.acquire() as conn:
            await apply_catalog(
                conn,
                CatalogSpec.model_validate(
                    {"handlers": [HANDLER], "offers": [_offer(input_price=1)]}
                ),
            )

    db.run(setup())

    @_HYPOTHESIS
    @given(
        credits=st.integers(min_value=0, max_value=10**6),
        base=st.integers(min_value=0, max_value=100),
        input_price=st.none() | PRICES,
        output_price=st.none() | PRICES,
        max_output_tokens=st.integers(min_value=1, max_value=10_000),
        text=TEXTS,
        outcome=_OUTCOMES,
        input_tokens=TOKENS,
        output_tokens=TOKENS,
        reported=st.booleans(),
    )
    def balances(
        credits: int,
        base: int,
        input_price: Decimal | None,
        output_price: Decimal | None,
        max_output_tokens: int,
        text: str,
        outcome: str,
        input_tokens: int,
        output_tokens: int,
        reported: bool,
    ) -> None:
        offer = OfferSpec.model_validate(
            _offer(
                price=base,
                input_price=input_price,
                output_price=output_price,
                max_output_tokens=max_output_tokens,
            )
        )
        usage = {"input_tokens": input_tokens, "output_tokens": output_tokens} if reported else None
        db.run(_one_request(db.pool, offer, credits, text, outcome, usage))

    balances()


def _ending(
    outcome: str, request_id: uuid.UUID, order: Order, usage: dict[str, int] | None
) -> Ended | None:
    """How the request ends, before recon's expiry if ``outcome`` names one."""
    if outcome.startswith("succeeded"):
        return Ended(request_id, 1, "succeeded", results=["x"], usage=usage)
    if outcome == "failed":
        return Ended(request_id, 1, "failed", error="boom", usage=usage)
    if outcome == "cancelled":
        return Ended(request_id, 1, "cancelled", error="cancelled")
    if outcome == "cancelled_streamed":
        spent = charged_when_cancelled_streaming(
            price=order.price, pricing=order.pricing, input_texts=[order.jobs[0].prompt or ""]
        )
        return Ended(request_id, 1, "cancelled", error="cancelled", spent=spent)
    return None


async def _one_request(
    pool: "asyncpg.Pool[Any]",
    spec: OfferSpec,
    credits: int,
    text: str,
    outcome: str,
    usage: dict[str, int] | None,
) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await upsert_offer(conn, spec)
        user_id = (await accounts.create_user(conn, name=f"u-{uuid.uuid4()}", credits=credits)).id
    offer = await OfferCatalog(pool, refresh_s=60).get("tok", "words")
    assert offer is not None
    order = submission.offer_order(offer, {"text": text})
    try:
        submitted = await submit_order(pool, user_id, order)
    except InsufficientCredits:
        assert order.price > credits
        assert await pool.fetchval("SELECT balance FROM users WHERE id = $1", user_id) == credits
        return
    request_id = submitted.id
    ending = _ending(outcome, request_id, order, usage)
    if ending is not None:
        started = [] if ending.status == "cancelled" else [Started(request_id, 1)]
        await record_outcomes(pool, started=started, ended=[ending])
    if outcome.endswith("expired"):
        await pool.execute(
            "UPDATE requests SET created_at = created_at - interval '2 hours', "
            "finished_at = finished_at - interval '2 hours' WHERE id = $1",
            request_id,
        )
        async with pool.acquire() as conn, conn.transaction():
            await expire_due(conn, limit=50)

    moved = await pool.fetchrow(_LEDGER, request_id)
    assert moved is not None
    assert moved["reserve"] == order.price
    assert moved["reserve"] == moved["settle"] + moved["release"] + moved["refund"]
    prices = None if order.pricing is None else TokenPrices.from_json(order.pricing)
    if outcome.startswith("succeeded"):
        # No usage reported: nothing says it cost less than its reservation.
        expected = (
            order.price
            if prices is None or usage is None
            else min(order.price, token_cost(prices, usage["input_tokens"], usage["output_tokens"]))
        )
        assert (moved["settle"], moved["refund"]) == (expected, 0)
    elif outcome == "cancelled_streamed":
        assert moved["release"] == 0
        if prices is not None:
            bound = input_token_bound([order.jobs[0].prompt or ""])
            assert moved["settle"] == min(order.price, token_cost(prices, bound, 0))
    else:
        assert (moved["settle"], moved["refund"]) == (0, order.price)
    wallet = await pool.fetchrow(_WALLET, user_id)
    assert wallet is not None
    assert wallet["balance"] == wallet["ledger_balance"] == credits - moved["settle"]
    assert wallet["balance"] >= 0
    assert wallet["reserved"] == 0


async def test_a_delivered_request_records_its_handlers_credits_as_its_cost(
    db_pool: "asyncpg.Pool[Any]",
) -> None:
    async with db_pool.acquire() as conn:
        await apply_catalog(
            conn,
            CatalogSpec.model_validate({"handlers": [HANDLER], "offers": [_offer(price=3)]}),
        )
    user = await create_user(db_pool, name="ada", credits=100)
    offer = await OfferCatalog(db_pool, refresh_s=60).get("tok", "words")
    assert offer is not None
    ids = []
    for text in ("a", "b", "c"):
        order = submission.offer_order(offer, {"text": text})
        ids.append((await submit_order(db_pool, user.id, order)).id)
    rows = await record_outcomes(
        db_pool,
        ended=[
            Ended(ids[0], 1, "succeeded", results=["a"]),
            Ended(ids[1], 1, "failed", error="boom"),
            Ended(ids[2], 1, "cancelled", error="cancelled", spent=3),  # its output streamed
        ],
    )
    assert sorted((r["status"], r["settled"], r["refunded"]) for r in rows) == [
        ("cancelled", 3, 0),
        ("failed", 0, 3),
        ("succeeded", 3, 0),
    ]
    costs = await db_pool.fetch("SELECT id, cost FROM requests")
    assert {r["id"]: r["cost"] for r in costs} == {ids[0]: 7, ids[1]: None, ids[2]: 7}


_DEAL = {"slug": "d", "offers": ["tok/plain"], "addons": ["tok/words"]}
_REFUSED = "deal 'd' names offer 'tok/words', which has per-token prices"


async def _catalog_with_a_deal(pool: "asyncpg.Pool[Any]", *, deal: bool) -> None:
    """tok/plain and tok/words at fixed prices, and (``deal``) the deal ``d`` naming both."""
    plain = {**_offer(price=1), "action": "plain"}
    async with pool.acquire() as conn:
        await apply_catalog(
            conn,
            CatalogSpec.model_validate(
                {
                    "handlers": [HANDLER],
                    "offers": [plain, _offer(price=1)],
                    "deals": [_DEAL] if deal else [],
                }
            ),
        )


async def test_a_deal_naming_a_token_priced_offer_is_refused(
    db_pool: "asyncpg.Pool[Any]",
) -> None:
    await _catalog_with_a_deal(db_pool, deal=False)
    async with db_pool.acquire() as conn, conn.transaction():
        await upsert_offer(conn, OfferSpec.model_validate(_offer(price=1, input_price=1)))
        with pytest.raises(TokenPricedDealError, match=_REFUSED):
            await upsert_deal(conn, DealSpec.model_validate(_DEAL))
    assert await db_pool.fetchval("SELECT count(*) FROM deals") == 0


async def test_token_prices_for_an_offer_a_deal_names_are_refused(
    db_pool: "asyncpg.Pool[Any]",
) -> None:
    await _catalog_with_a_deal(db_pool, deal=True)
    priced = OfferSpec.model_validate(_offer(price=1, input_price=1))
    # The file does not name the deal, and (without pruning) leaves it enabled.
    spec = CatalogSpec.model_validate({"handlers": [HANDLER], "offers": [priced.model_dump()]})
    async with db_pool.acquire() as conn:
        with pytest.raises(TokenPricedDealError, match=_REFUSED):
            await upsert_offer(conn, priced)
        with pytest.raises(TokenPricedDealError, match=_REFUSED):
            await apply_catalog(conn, spec, prune=False)
    assert await db_pool.fetchval("SELECT input_price FROM offers WHERE action = 'words'") is None
    # Pruning disables the deal, which lets the offer have token prices.
    async with db_pool.acquire() as conn:
        await apply_catalog(conn, spec)
    assert await db_pool.fetchval("SELECT enabled FROM deals") is False
    assert await db_pool.fetchval("SELECT input_price FROM offers WHERE action = 'words'") == 1
