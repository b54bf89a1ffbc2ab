"""Prices in whole credits: deals' prices and how they are shared among their steps, and what
a request costs at per-token prices.

Rounding rule for deals: a percentage discount is rounded *down* to whole credits, so the price
is rounded up: ``price = total - floor(total * modifier / 100)``. A 10 % discount on 15 credits
takes off 1 credit (1.5 rounded down), leaving 14. A modifier of 100 makes the part free.

Per-token prices: a request costs ``base + ceil((input_tokens * input_per_1k + output_tokens *
output_per_1k) / 1000)``, exactly, rounded up to whole credits (``token_cost``; the outcome
statement computes the same in SQL, ``token_cost_sql``). At submission it reserves the most it
can cost: the cost of ``input_token_bound`` input tokens and of its most output tokens; its
success settles the cost of the usage its handler reported, at most the reservation, and
releases the rest.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal
from typing import Any


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


@dataclass(frozen=True, slots=True)
class TokenPrices:
    """The per-token prices a request was accepted at, as ``requests.pricing`` keeps them."""

    base: int
    """Credits per request, whatever its tokens (the offer's ``price``)."""
    input_per_1k: Decimal
    output_per_1k: Decimal

    def __post_init__(self) -> None:
        if isinstance(self.base, bool) or not isinstance(self.base, int) or self.base < 0:
            raise ValueError("a base price is a whole number of credits, not negative")
        for price in (self.input_per_1k, self.output_per_1k):
            if not price.is_finite() or price < 0:
                raise ValueError("a price per 1,000 tokens is a finite number, not negative")

    def to_json(self) -> dict[str, Any]:
        """``{"base": int, "input_per_1k": "0.5", "output_per_1k": "2"}``: the prices as
        decimal strings, exact whatever reads them (Postgres reads them as ``numeric``)."""
        return {
            "base": self.base,
            "input_per_1k": format(self.input_per_1k.normalize(), "f"),
            "output_per_1k": format(self.output_per_1k.normalize(), "f"),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TokenPrices:
        return cls(
            base=data["base"],
            input_per_1k=Decimal(data["input_per_1k"]),
            output_per_1k=Decimal(data["output_per_1k"]),
        )


TEXT_OVERHEAD_TOKENS = 4
"""Per text: a chat message's framing (its role and separators), as OpenAI counts it."""
REPLY_PRIMING_TOKENS = 3
"""Once: the tokens that open the reply."""


def input_token_bound(texts: Sequence[str]) -> int:
    """The most tokens ``texts`` can make: their UTF-8 bytes, plus ``TEXT_OVERHEAD_TOKENS`` per
    text and ``REPLY_PRIMING_TOKENS``.

    A byte-level BPE tokenizer (GPT-2's through ``o200k_base``, and the tiktoken-style ones of
    Llama 3 and others) has every byte in its base vocabulary and merges only join them, so ``n``
    bytes never make more than ``n`` tokens. A tokenizer that could exceed one token per byte is
    still charged no more than this bound: the settle is capped at the reservation."""
    size = sum(len(text.encode("utf-8", "surrogatepass")) for text in texts)
    return size + TEXT_OVERHEAD_TOKENS * len(texts) + REPLY_PRIMING_TOKENS


def at_percent(credits: int, percent: int) -> int:
    """``percent`` of ``credits``, rounded up to whole credits: what a priority tier costs
    (``tier_percent``). At 100 or more, ``at_percent(x, p) * 100 // p == x`` for every ``x``:
    the outcome statement gets back what ``default`` costs that way."""
    if credits < 0 or percent < 1:
        raise ValueError("credits cannot be negative, and a percentage is at least 1")
    return -(-credits * percent // 100)


def token_cost(prices: TokenPrices, input_tokens: int, output_tokens: int) -> int:
    """``base + ceil((input_tokens * input_per_1k + output_tokens * output_per_1k) / 1000)``,
    in exact arithmetic."""
    if input_tokens < 0 or output_tokens < 0:
        raise ValueError("a count of tokens cannot be negative")
    in_num, in_den = prices.input_per_1k.as_integer_ratio()
    out_num, out_den = prices.output_per_1k.as_integer_ratio()
    numerator = input_tokens * in_num * out_den + output_tokens * out_num * in_den
    return prices.base + -(-numerator // (1000 * in_den * out_den))


def token_cost_sql(pricing: str, usage: str) -> str:
    """``token_cost`` as a SQL expression (a whole ``numeric``), of the jsonb expressions
    ``pricing`` (``TokenPrices.to_json``) and ``usage`` (``input_tokens``, ``output_tokens``: a
    missing or negative count is 0). It is left a ``numeric``, exact however large the usage a
    handler reports: cap it before casting it to ``bigint``."""

    def tokens(kind: str) -> str:
        return f"greatest(coalesce(({usage} ->> '{kind}')::numeric, 0), 0)"

    def per_1k(kind: str) -> str:
        return f"({pricing} ->> '{kind}')::numeric"

    # numeric multiplication is exact (its scale is the sum of its factors'), where a division
    # would round to the scale Postgres picks.
    return (
        f"(({pricing} ->> 'base')::numeric + ceil(({tokens('input_tokens')} * "
        f"{per_1k('input_per_1k')} + {tokens('output_tokens')} * {per_1k('output_per_1k')}) "
        "* 0.001))"
    )
