"""Per-token prices against the real Postgres: the SQL cost agrees with the Python one, and no
deal can name a token-priced offer, however the catalog is written."""

import asyncio
from collections.abc import Coroutine, Iterator
from decimal import Decimal
from typing import Any, TypeVar

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from libs.catalog import (
    CatalogSpec,
    DealSpec,
    OfferSpec,
    TokenPricedDealError,
    TokenPrices,
    apply_catalog,
    token_cost,
    token_cost_sql,
    upsert_deal,
    upsert_offer,
)
from libs.db import create_pool
from tests.support import ServerUrls

T = TypeVar("T")

PRICES = st.one_of(
    st.just(Decimal(0)),
    st.decimals(min_value=0, max_value=50, places=6),
    st.decimals(min_value=0, max_value=10**9, places=6),
)
TOKENS = st.one_of(
    st.integers(min_value=0, max_value=5000), st.integers(min_value=0, max_value=2**62)
)

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
