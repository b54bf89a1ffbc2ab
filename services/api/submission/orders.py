"""The order of a single offer, whichever door it comes through."""

from __future__ import annotations

from services.api.catalog.service import Offer
from services.api.submission.pricing import priced, request_texts
from services.api.submission.service import Job, Order


def offer_order(offer: Offer, inputs: dict[str, str]) -> Order:
    """What submitting ``inputs`` to ``offer`` buys: its one job, at the offer's price (at
    per-token prices, the most its prompt and the offer's output cap can cost; the provider is
    then asked for no more output than that cap)."""
    prompt = offer.template.render(inputs)
    price, pricing = priced(offer, input_texts=request_texts(prompt, None), max_output_tokens=None)
    options = None
    if pricing is not None and offer.max_output_tokens is not None:
        options = {"max_tokens": offer.max_output_tokens}
    return Order(
        name=f"{offer.service}/{offer.action}",
        handler=offer.handler,
        key=(str(offer.id), inputs),
        inputs=inputs,
        price=price,
        jobs=(Job(offer, prompt, price, options=options),),
        offer_id=offer.id,
        pricing=pricing,
    )
