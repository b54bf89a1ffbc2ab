"""What a single offer's request reserves: the one pricing rule every front door applies.

At a fixed price, the offer's ``price``. At per-token prices (``libs.catalog.pricing``), the most
the request can cost: its input counted at ``input_token_bound`` tokens, and its most output
tokens; the request keeps the prices (``requests.pricing``) and its success settles what its
reported usage costs, releasing the rest.

At a priority tier (``tier_of``), either is that tier's percentage of it, rounded up; the
request keeps the percentage (``requests.tier_percent``), its prices stay the offer's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, cast

from libs.catalog import TokenPrices, input_token_bound, token_cost, tokens
from libs.catalog.pricing import at_percent
from libs.contracts.tiers import TIERS, Tier
from services.api.catalog.service import Offer
from services.api.errors import InvalidInputs


def request_texts(prompt: str, messages: Sequence[Mapping[str, Any]] | None) -> list[str]:
    """The texts a request's input is counted from: each message's content for a chat request,
    else its prompt. Doors price with it, and a cancel counts the same texts again."""
    if messages:
        return [m["content"] for m in messages if isinstance(m.get("content"), str)]
    return [prompt]


@dataclass(frozen=True, slots=True)
class TierChoice:
    tier: Tier
    percent: int
    """What the tier costs, as a percentage of the offer's prices."""


def tier_of(offer: Offer, asked: str | None) -> TierChoice:
    """The tier a request to ``offer`` is served at: the one it names (``auto`` or none: the
    offer's default). One the offer does not sell is a 422 naming those it does."""
    name = offer.default_tier if asked in (None, "auto") else asked
    percent = offer.tier_percent(name) if name in TIERS else None
    if percent is None:
        sold = ", ".join(offer.tiers_sold)
        raise InvalidInputs(
            f"tier {asked!r} is not sold by {offer.service}/{offer.action}; it sells: {sold}",
            tiers=list(offer.tiers_sold),
        )
    return TierChoice(cast(Tier, name), percent)


def check_context(
    offer: Offer, *, input_texts: Sequence[str], max_output_tokens: int | None
) -> None:
    """Refuse (422, before anything is reserved) a request to an offer of a model whose input
    and the output it may ask for cannot fit the model's context window, naming both numbers;
    and one that asks for more output than the model gives. Its output is ``max_output_tokens``
    when asked, else the offer's cap, else the model's."""
    model = offer.model
    if model is None:
        return
    if max_output_tokens is not None and max_output_tokens > model.max_output_tokens:
        raise InvalidInputs(
            f"max_tokens is {max_output_tokens}; model {model.name}@{model.version} writes at "
            f"most {model.max_output_tokens}",
            limit=model.max_output_tokens,
        )
    output = max_output_tokens or offer.max_output_tokens or model.max_output_tokens
    output = min(output, model.max_output_tokens)
    count, exact = tokens.counter(model.tokenizer)
    prompt = count(input_texts)
    if prompt + output > model.context_window:
        counted = "counted" if exact else "estimated"
        raise InvalidInputs(
            f"the input is {prompt} tokens ({counted}) and {output} output tokens are asked "
            f"for: {prompt + output} tokens do not fit the context window of model "
            f"{model.name}@{model.version}, {model.context_window} tokens",
            input_tokens=prompt,
            output_tokens=output,
            context_window=model.context_window,
            counted=counted,
        )


def priced(
    offer: Offer,
    *,
    input_texts: Sequence[str],
    max_output_tokens: int | None,
    percent: int = 100,
) -> tuple[int, dict[str, Any] | None]:
    """(credits to reserve, the prices to keep with the request, or None at a fixed price), at
    ``percent`` of the offer's prices (its tier's), rounded up.

    ``max_output_tokens`` is what the request asks for, if anything: at token prices it defaults
    to the offer's ``max_output_tokens``, and more than that is a 422 naming the cap. An offer
    of a model first checks the request fits its context (``check_context``)."""
    check_context(offer, input_texts=input_texts, max_output_tokens=max_output_tokens)
    if not offer.token_priced:
        return at_percent(offer.price, percent), None
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
    bound = token_cost(prices, input_token_bound(input_texts), max_output_tokens)
    return at_percent(bound, percent), prices.to_json()


def charged_when_cancelled_streaming(
    *,
    price: int,
    pricing: Mapping[str, Any] | None,
    input_texts: Sequence[str],
    percent: int = 100,
) -> int:
    """What a request whose output had begun to stream is charged when it is cancelled: what
    was delivered. At a fixed price, its price. At token prices, the cost of its input bound and
    no output tokens (a cancelled job reports no usage, and its partial output is not counted),
    at its tier's ``percent``, never more than its reservation ``price``."""
    if pricing is None:
        return price
    prices = TokenPrices.from_json(pricing)
    return min(price, at_percent(token_cost(prices, input_token_bound(input_texts), 0), percent))
