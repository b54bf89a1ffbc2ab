"""The order of a single offer, whichever door it comes through."""

from __future__ import annotations

from libs.contracts.tiers import DEFAULT_TIER
from services.api.catalog.service import Offer
from services.api.errors import InvalidInputs
from services.api.submission.pricing import priced, request_texts, tier_of
from services.api.submission.service import Job, Order, SubmittedFile


def offer_order(
    offer: Offer,
    inputs: dict[str, str],
    files: tuple[SubmittedFile, ...] = (),
    *,
    tier: str | None = None,
) -> Order:
    """What submitting ``inputs`` (and ``files``, checked against the offer's file inputs) to
    ``offer`` at ``tier`` (None: its default) buys: its one job, at the offer's price (at
    per-token prices, the most its prompt and the offer's output cap can cost; the provider is
    then asked for no more output than that cap), at the tier's percentage of it. A required
    file input missing is a 422 naming it, and so is a tier the offer does not sell."""
    chosen = tier_of(offer, tier)
    given = {f.name for f in files}
    missing = [name for name in offer.required_files if name not in given]
    if missing:
        raise InvalidInputs("missing files: " + ", ".join(missing), missing=missing)
    unknown = sorted(given - set(offer.files))
    if unknown:
        raise InvalidInputs("unknown files: " + ", ".join(unknown), unknown=unknown)
    prompt = offer.template.render(inputs)
    price, pricing = priced(
        offer,
        input_texts=request_texts(prompt, None),
        max_output_tokens=None,
        percent=chosen.percent,
    )
    options = None
    if pricing is not None and offer.max_output_tokens is not None:
        options = {"max_tokens": offer.max_output_tokens}
    # The files' bytes name the request (by their sha256), not the ids they were sent under:
    # the same image sent again, in a body or as an upload, is the same request.
    key: tuple[object, ...] = (str(offer.id), inputs)
    if chosen.tier != DEFAULT_TIER:
        # Another tier is another purchase: the same inputs at it are a new request.
        key += (chosen.tier,)
    if files:
        key += ({f.name: f.sha256 for f in files},)
    return Order(
        name=f"{offer.service}/{offer.action}",
        handler=offer.handler,
        key=key,
        inputs=inputs,
        price=price,
        jobs=(Job(offer, prompt, price, options=options),),
        offer_id=offer.id,
        pricing=pricing,
        files=files,
        tier=chosen.tier,
        tier_percent=chosen.percent,
    )
