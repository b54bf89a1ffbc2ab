"""Deal prices in whole credits, and how a deal's price is shared among its steps.

Rounding rule: a percentage discount is rounded *down* to whole credits, so the price is rounded
up: ``price = total - floor(total * modifier / 100)``. A 10 % discount on 15 credits takes off
1 credit (1.5 rounded down), leaving 14. A modifier of 100 makes the part free.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_FLOOR, Decimal


def discounted(total: int, modifier: Decimal) -> int:
    """``total`` less ``modifier`` percent, the discount rounded down to whole credits."""
    if total < 0:
        raise ValueError("a total of credits cannot be negative")
    if not Decimal(0) <= modifier <= Decimal(100):
        raise ValueError("a modifier is a percentage between 0 and 100")
    discount = (Decimal(total) * modifier / Decimal(100)).to_integral_value(rounding=ROUND_FLOOR)
    return total - int(discount)


def deal_price(
    *,
    primary: Sequence[int],
    addons: Sequence[int],
    price: int | None,
    price_modifier: Decimal,
    addons_modifier: Decimal,
) -> tuple[int, int]:
    """(price of the primary offers, price of the selected add-ons): a fixed ``price`` or the sum
    of the primary offers' prices less ``price_modifier`` percent, and the sum of the add-ons'
    prices less ``addons_modifier`` percent."""
    base = price if price is not None else discounted(sum(primary), price_modifier)
    return base, discounted(sum(addons), addons_modifier)


def shares(total: int, weights: Sequence[int]) -> list[int]:
    """``total`` split in proportion to ``weights`` (the offers' list prices), in whole credits
    that add up to ``total`` exactly: each share is rounded down and the credits left over go,
    one each, to the earliest steps. With no weights at all (free offers), the split is even."""
    if not weights:
        if total:
            raise ValueError("a non-zero price cannot be shared among no steps")
        return []
    weight_sum = sum(weights)
    if weight_sum == 0:
        weights = [1] * len(weights)
        weight_sum = len(weights)
    parts = [total * w // weight_sum for w in weights]
    for i in range(total - sum(parts)):
        parts[i % len(parts)] += 1
    return parts
