from decimal import Decimal

import pytest
from pydantic import ValidationError

from libs.catalog import DealSpec, PromptTemplate, deal_price, discounted, shares
from libs.catalog.pipeline import passed_on, render_next


@pytest.mark.parametrize(
    ("primary", "addons", "price", "modifier", "addons_modifier", "expected"),
    [
        # fixed price: the primary offers' prices do not matter
        ([10, 20], [], 25, "0", "0", (25, 0)),
        ([10, 20], [], 0, "0", "0", (0, 0)),
        # sum less a modifier
        ([10, 20], [], None, "0", "0", (30, 0)),
        ([10, 20], [], None, "10", "0", (27, 0)),
        ([10, 20], [], None, "100", "0", (0, 0)),
        # rounding: the discount is rounded down, so the price is rounded up
        ([15], [], None, "10", "0", (14, 0)),  # 1.5 off -> 1 off
        ([9], [], None, "10", "0", (9, 0)),  # 0.9 off -> 0 off
        ([1], [], None, "99.99", "0", (1, 0)),  # 0.9999 off -> 0 off
        ([3], [], None, "33.33", "0", (3, 0)),  # 0.9999 off -> 0 off
        ([3], [], None, "33.34", "0", (2, 0)),  # 1.0002 off -> 1 off
        ([200], [], None, "12.5", "0", (175, 0)),  # exactly 25 off
        # add-ons: their own sum and modifier, on top of a fixed or discounted base
        ([10], [4, 6], 8, "0", "0", (8, 10)),
        ([10], [4, 6], None, "50", "25", (5, 8)),  # 2.5 off the add-ons -> 2 off
        ([10], [5], None, "0", "50", (10, 3)),  # 2.5 off -> 2 off
        ([10], [], None, "0", "50", (10, 0)),  # no add-on selected
    ],
)
def test_deal_price_table(
    primary: list[int],
    addons: list[int],
    price: int | None,
    modifier: str,
    addons_modifier: str,
    expected: tuple[int, int],
) -> None:
    assert (
        deal_price(
            primary=primary,
            addons=addons,
            price=price,
            price_modifier=Decimal(modifier),
            addons_modifier=Decimal(addons_modifier),
        )
        == expected
    )


def test_discount_refuses_what_is_not_a_percentage() -> None:
    with pytest.raises(ValueError, match="percentage"):
        discounted(10, Decimal(101))
    with pytest.raises(ValueError, match="negative"):
        discounted(-1, Decimal(1))


@pytest.mark.parametrize(
    ("total", "weights", "expected"),
    [
        (30, [10, 20], [10, 20]),
        (27, [10, 20], [9, 18]),
        (10, [1, 1, 1], [4, 3, 3]),  # leftover credits go to the earliest steps
        (5, [0, 0], [3, 2]),  # free offers in a paid deal: an even split
        (0, [5, 5], [0, 0]),
        (0, [], []),
        (7, [3], [7]),
    ],
)
def test_shares_add_up_to_the_price(total: int, weights: list[int], expected: list[int]) -> None:
    assert shares(total, weights) == expected
    assert sum(expected) == total


def test_deal_spec_rules() -> None:
    with pytest.raises(ValidationError, match="either a fixed price or a price_modifier"):
        DealSpec.model_validate({"slug": "x", "offers": ["a/b"], "price": 1, "price_modifier": 5})
    with pytest.raises(ValidationError, match="pipeline steps only"):
        DealSpec.model_validate({"slug": "x", "offers": [{"offer": "a/b", "mode": "extend"}]})
    with pytest.raises(ValidationError, match="less than or equal to 100"):
        DealSpec.model_validate({"slug": "x", "offers": ["a/b"], "price_modifier": 150})
    with pytest.raises(ValidationError, match="listed twice"):
        DealSpec.model_validate({"slug": "x", "offers": ["a/b"], "addons": ["c/d", "c/d"]})
    with pytest.raises(ValidationError, match="at least 1 item"):
        DealSpec.model_validate({"slug": "x", "offers": []})
    spec = DealSpec.model_validate({"slug": "x", "offers": ["a/b", "c/d"], "pipeline": True})
    assert spec.modes() == ["overwrite", "overwrite"]


@pytest.mark.parametrize(
    ("mode", "expected"),
    [("overwrite", ["new"]), ("extend", ["old", "new"]), ("pass_through", ["old"])],
)
def test_pipeline_modes(mode: str, expected: list[str]) -> None:
    assert passed_on(mode, ["old"], ["new"]) == expected  # type: ignore[arg-type]
    assert passed_on(mode, None, ["new"]) == ([] if mode == "pass_through" else ["new"])  # type: ignore[arg-type]


def test_next_step_takes_inputs_by_name_and_the_previous_output_otherwise() -> None:
    template = PromptTemplate.parse("{text} / {input}")
    rendered = render_next(template, {"text": "hi"}, ["one", {"n": 2}])
    assert rendered == 'hi / one\n\n{"n":2}'
