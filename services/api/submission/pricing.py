"""What a single offer's request reserves: the one pricing rule every front door applies.

At a fixed price, the offer's ``price``. At per-token prices (``libs.catalog.pricing``), the most
the request can cost: its input counted at ``input_token_bound`` tokens, and its most output
tokens; the request keeps the prices (``requests.pricing``) and its success settles what its
reported usage costs, releasing the rest.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from libs.catalog import TokenPrices, input_token_bound, token_cost
from services.api.catalog.service import Offer
from services.api.errors import InvalidInputs


def request_texts(prompt: str, messages: Sequence[Mapping[str, Any]] | None) -> list[str]:
    """The texts a request's input is counted from: each message's content for a chat request,
    else its prompt. Doors price with it, and a cancel counts the same texts again."""
    if messages:
        return [m["content"] for m in messages if isinstance(m.get("content"), str)]
    return [prompt]


def priced(
    offer: Offer, *, input_texts: Sequence[str], max_output_tokens: int | None
) -> tuple[int, dict[str, Any] | None]:
    """(credits to reserve, the prices to keep with the request, or None at a fixed price).

    ``max_output_tokens`` is what the request asks for, if anything: at token prices it defaults
    to the offer's ``max_output_tokens``, and more than that is a 422 naming the cap."""
    if not offer.token_priced:
        return offer.price, None
    cap = offer.max_output_tokens
    if max_output_tokens is None:
        # No cap: the offer has no output price, so output tokens cost nothing.
        max_output_tokens = cap or 0
    elif max_output_tokens < 1:
        raise InvalidInputs(f"max_tokens is {max_output_tokens}; it must be at least 1")
    elif cap is not None and max_output_tokens > cap:
        raise InvalidInputs(
            f"max_tokens is {max_output_tokens}; this offer allows at most {cap}", limit=cap
        )
    prices = TokenPrices(
        base=offer.price,
        input_per_1k=offer.input_price or Decimal(0),
        output_per_1k=offer.output_price or Decimal(0),
    )
    return token_cost(prices, input_token_bound(input_texts), max_output_tokens), prices.to_json()


def charged_when_cancelled_streaming(
    *, price: int, pricing: Mapping[str, Any] | None, input_texts: Sequence[str]
) -> int:
    """What a request whose output had begun to stream is charged when it is cancelled: what
    was delivered. At a fixed price, its price. At token prices, the cost of its input bound and
    no output tokens (a cancelled job reports no usage, and its partial output is not counted),
    never more than its reservation ``price``."""
    if pricing is None:
        return price
    prices = TokenPrices.from_json(pricing)
    return min(price, token_cost(prices, input_token_bound(input_texts), 0))
