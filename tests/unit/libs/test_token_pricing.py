"""Per-token prices: the offer's fields and their rules, the bound on input tokens, and the cost
of a usage (exact, rounded up to whole credits)."""

from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from libs.catalog import (
    CatalogSpec,
    OfferSpec,
    TokenPrices,
    catalog_data,
    catalog_yaml,
    input_token_bound,
    token_cost,
)

OFFER = {"service": "a", "action": "b", "price": 1, "prompt_template": "{x}", "handler": "h.x"}


def _offer(**fields: Any) -> OfferSpec:
    return OfferSpec.model_validate({**OFFER, **fields})


def test_an_offer_takes_token_prices_and_an_output_cap() -> None:
    offer = _offer(input_price=0.5, output_price=2, max_output_tokens=4096)
    assert (offer.input_price, offer.output_price) == (Decimal("0.5"), Decimal(2))
    assert offer.max_output_tokens == 4096
    assert offer.token_priced
    assert _offer(input_price=0).token_priced  # free input tokens are still token pricing
    assert not _offer().token_priced
    assert not _offer(max_output_tokens=10).token_priced  # a cap alone prices nothing
    assert _offer(input_price=0.000001).input_price == Decimal("0.000001")
    assert _offer(input_price=10**9).input_price == 10**9


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"output_price": 1}, "needs max_output_tokens"),
        ({"input_price": 1, "output_price": 1}, "needs max_output_tokens"),
        ({"input_price": -1}, "greater than or equal to 0"),
        ({"input_price": 10**9 + 1}, "less than or equal to 1000000000"),
        ({"input_price": 0.0000001}, "no more than 6 decimal places"),
        ({"input_price": True}, "valid number"),
        ({"output_price": "2", "max_output_tokens": 5}, "valid number"),
        ({"max_output_tokens": 0}, "greater than or equal to 1"),
        ({"max_output_tokens": 2**31}, "less than or equal to 2147483647"),
        ({"max_output_tokens": True}, "valid integer"),
        ({"max_output_tokens": "5"}, "valid integer"),
    ],
)
def test_token_fields_are_refused_with_a_clear_message(
    fields: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ValidationError, match=problem):
        _offer(**fields)


@pytest.mark.parametrize("where", ["offers", "addons"])
def test_a_deal_cannot_name_a_token_priced_offer(where: str) -> None:
    deal: dict[str, Any] = {"slug": "d", "offers": ["a/plain"]}
    deal[where] = deal.get(where, []) + ["a/b"]
    with pytest.raises(ValidationError, match="deal 'd' names offer 'a/b', which has per-token"):
        CatalogSpec.model_validate(
            {
                "handlers": [{"id": "h.x"}],
                "offers": [{**OFFER, "action": "plain"}, {**OFFER, "input_price": 1}],
                "deals": [deal],
            }
        )


def test_token_prices_survive_an_export_as_json_numbers() -> None:
    spec = CatalogSpec.model_validate(
        {
            "handlers": [{"id": "h.x"}],
            "offers": [
                {
                    **OFFER,
                    "input_price": 0.000001,
                    "output_price": 999999999.999999,
                    "max_output_tokens": 7,
                },
                {**OFFER, "action": "plain"},
            ],
        }
    )
    data = catalog_data(spec)
    assert data["offers"][0]["input_price"] == 0.000001
    assert data["offers"][0]["output_price"] == 999999999.999999
    assert "input_price" not in data["offers"][1]
    assert CatalogSpec.model_validate(yaml.safe_load(catalog_yaml(spec))) == spec
    assert CatalogSpec.model_validate_json(spec.model_dump_json()) == spec


def test_the_input_bound_is_a_token_per_byte_and_the_framing() -> None:
    assert input_token_bound([]) == 3
    assert input_token_bound([""]) == 3 + 4
    assert input_token_bound(["hello"]) == 5 + 4 + 3
    assert input_token_bound(["é", "€", "\U0001f600"]) == (2 + 3 + 4) + 3 * 4 + 3


@pytest.mark.parametrize(
    ("base", "input_per_1k", "output_per_1k", "usage", "cost"),
    [
        (0, "0", "0", (10**9, 10**9), 0),
        (5, "0", "0", (1, 1), 5),
        (0, "1", "0", (1, 0), 1),  # a thousandth of a credit is a credit
        (0, "1", "0", (1000, 0), 1),
        (0, "1", "0", (1001, 0), 2),
        (2, "100", "250", (3, 3), 4),  # 1.05 rounded up
        (0, "0.5", "2.000001", (1000, 1000), 3),  # 2.500001 rounded up
        (0, "0.000001", "0", (10**9, 0), 1),
        (7, "1000000000", "1000000000", (2**31 - 1, 2**31 - 1), 7 + 2 * (2**31 - 1) * 10**6),
    ],
)
def test_a_usage_costs_the_base_and_its_tokens_rounded_up(
    base: int, input_per_1k: str, output_per_1k: str, usage: tuple[int, int], cost: int
) -> None:
    prices = TokenPrices(base, Decimal(input_per_1k), Decimal(output_per_1k))
    assert token_cost(prices, *usage) == cost


PRICES = st.decimals(min_value=0, max_value=10**9, places=6)


@given(
    base=st.integers(min_value=0, max_value=2**53),
    input_per_1k=PRICES,
    output_per_1k=PRICES,
    input_tokens=st.integers(min_value=0, max_value=2**62),
    output_tokens=st.integers(min_value=0, max_value=2**62),
)
def test_the_cost_is_exact(
    base: int,
    input_per_1k: Decimal,
    output_per_1k: Decimal,
    input_tokens: int,
    output_tokens: int,
) -> None:
    prices = TokenPrices(base, input_per_1k, output_per_1k)
    exact = (input_tokens * Fraction(input_per_1k) + output_tokens * Fraction(output_per_1k)) / 1000
    cost = token_cost(prices, input_tokens, output_tokens)
    assert cost - base - 1 < exact <= cost - base
    assert TokenPrices.from_json(prices.to_json()) == prices
    assert token_cost(prices, input_tokens + 1, output_tokens) >= cost


def test_prices_are_kept_as_exact_strings_and_read_back_checked() -> None:
    prices = TokenPrices(3, Decimal("0.500000"), Decimal("2E+1"))
    assert prices.to_json() == {"base": 3, "input_per_1k": "0.5", "output_per_1k": "20"}
    with pytest.raises(ValueError, match="not negative"):
        TokenPrices.from_json({"base": 1, "input_per_1k": "-1", "output_per_1k": "0"})
    with pytest.raises(ValueError, match="whole number"):
        TokenPrices.from_json({"base": True, "input_per_1k": "1", "output_per_1k": "0"})
    with pytest.raises(ValueError, match="cannot be negative"):
        token_cost(prices, -1, 0)
