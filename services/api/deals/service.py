"""The deal door: what submitting to a deal buys (see ``services.api.catalog.deals``)."""

from __future__ import annotations

from typing import Any

from services.api.catalog.deals import Deal
from services.api.catalog.service import Offer
from services.api.errors import InvalidInputs
from services.api.submission import Job, Order, check_string_fields


def check_inputs(deal: Deal, inputs: dict[str, Any], addon_names: list[str]) -> list[Offer]:
    """The selected add-ons' offers, once the inputs and add-ons are known good; a 422 naming
    what is wrong otherwise."""
    unknown_addons = [a for a in addon_names if a not in deal.addons]
    if unknown_addons:
        raise InvalidInputs(
            "unknown add-ons: "
            + ", ".join(unknown_addons)
            + (f" (this deal offers: {', '.join(deal.addons)})" if deal.addons else ""),
            unknown_addons=unknown_addons,
        )
    if len(set(addon_names)) != len(addon_names):
        raise InvalidInputs("an add-on is selected twice")
    addons = [deal.addons[a] for a in addon_names]
    required = deal.required(addons)
    check_string_fields(inputs, required, noun="inputs")
    return addons


def order_for(deal: Deal, inputs: dict[str, Any], addon_names: list[str]) -> Order:
    """What submitting ``inputs`` to ``deal`` with ``addon_names`` buys: a job per offer (the
    pipeline's later steps without a prompt yet), at the deal's price shared among them."""
    addons = check_inputs(deal, inputs, addon_names)
    price, shares_ = deal.quote(addons)
    offers = [(s.offer, "primary", s.mode) for s in deal.steps]
    offers += [(a, "addon", None) for a in addons]
    jobs = []
    for idx, ((offer, role, mode), share) in enumerate(zip(offers, shares_, strict=True)):
        waits = deal.pipeline and role == "primary" and idx > 0
        prompt = None if waits else offer.template.render(inputs)
        jobs.append(Job(offer, prompt, share, role=role, mode=mode))
    return Order(
        name=f"deal/{deal.slug}",
        handler="deal",
        key=("deal", str(deal.id), inputs, sorted(addon_names)),
        inputs=inputs,
        price=price,
        jobs=tuple(jobs),
        deal_id=deal.id,
    )
