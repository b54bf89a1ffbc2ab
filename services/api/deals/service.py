"""Deals: offers sold together, run as one request with a step per offer.

Steps are numbered from 0: the primary offers in the deal's order, then the selected add-ons in
the deal's order. Without a pipeline every step starts at once; in a pipeline the primary steps
run one after the other (``libs.catalog.pipeline``) while the add-ons start at once.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import asyncpg
import orjson

from libs.catalog import deal_price, shares
from libs.contracts import RequestStatus, TaskMessage
from services.api.auth.service import Principal
from services.api.catalog.service import Offer, OfferCatalog
from services.api.deals import repository
from services.api.errors import BadRequest, InsufficientCredits, InvalidInputs
from services.api.requests.repository import KeyReused, ShortBalance, get_status
from services.api.requests.service import (
    KEY_REUSED,
    REQUEST_ID_NAMESPACE,
    check_string_fields,
    check_unfinished,
    new_traceparent,
    valid_traceparent,
)


@dataclass(frozen=True, slots=True)
class DealStep:
    offer: Offer
    mode: str | None


@dataclass(frozen=True, slots=True)
class Deal:
    id: uuid.UUID
    slug: str
    price: int | None
    price_modifier: Decimal
    addons_modifier: Decimal
    pipeline: bool
    steps: tuple[DealStep, ...]
    addons: dict[str, Offer]
    """The deal's add-ons whose offers are enabled, by ``service/action``, in the deal's order."""

    @property
    def input_steps(self) -> tuple[DealStep, ...]:
        """The primary steps whose templates take the client's inputs."""
        return self.steps[:1] if self.pipeline else self.steps

    def required(self, addons: list[Offer]) -> list[str]:
        names: list[str] = []
        for offer in [s.offer for s in self.input_steps] + addons:
            names.extend(v for v in offer.template.variables if v not in names)
        return names

    def variables(self) -> list[str]:
        """Every input the deal can take: its primary steps' and all its add-ons'."""
        return self.required(list(self.addons.values()))

    def quote(self, addons: list[Offer]) -> tuple[int, list[int]]:
        """The price of the deal with ``addons``, and each step's share of it."""
        primary = [s.offer.price for s in self.steps]
        base, extra = deal_price(
            primary=primary,
            addons=[a.price for a in addons],
            price=self.price,
            price_modifier=self.price_modifier,
            addons_modifier=self.addons_modifier,
        )
        return base + extra, shares(base, primary) + shares(extra, [a.price for a in addons])

    @property
    def base_price(self) -> int:
        return self.quote([])[0]


class DealCatalog:
    """Enabled deals whose primary offers are all enabled, reloaded every ``refresh_s``."""

    def __init__(self, pool: asyncpg.Pool[Any], offers: OfferCatalog, *, refresh_s: float) -> None:
        self._pool = pool
        self._offers = offers
        self._refresh_s = refresh_s
        self._deals: dict[str, Deal] = {}
        self._loaded_at = float("-inf")
        self._lock = asyncio.Lock()

    async def get(self, slug: str) -> Deal | None:
        await self._fresh(force=slug not in self._deals)
        return self._deals.get(slug)

    async def list_deals(self) -> list[Deal]:
        await self._fresh(force=False)
        return list(self._deals.values())

    async def _fresh(self, *, force: bool) -> None:
        age = time.monotonic() - self._loaded_at
        if age > self._refresh_s or (force and age > 1.0):
            await self._reload()

    async def _reload(self) -> None:
        started = time.monotonic()
        async with self._lock:
            if self._loaded_at >= started:
                return
            offers = {f"{o.service}/{o.action}": o for o in await self._offers.list_offers()}
            deals: dict[str, Deal] = {}
            for row in await repository.enabled_deals(self._pool):
                steps = [(offers.get(s["offer"]), s.get("mode")) for s in row["offers"]]
                if any(offer is None for offer, _ in steps):
                    continue
                deals[row["slug"]] = Deal(
                    id=row["id"],
                    slug=row["slug"],
                    price=row["price"],
                    price_modifier=row["price_modifier"],
                    addons_modifier=row["addons_modifier"],
                    pipeline=row["pipeline"],
                    steps=tuple(DealStep(o, m) for o, m in steps if o is not None),
                    addons={name: offers[name] for name in row["addons"] if name in offers},
                )
            self._deals = deals
            self._loaded_at = time.monotonic()


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


def derive_deal_request_id(
    user_id: uuid.UUID,
    deal_id: uuid.UUID,
    inputs: dict[str, str],
    addons: list[str],
    idempotency_key: str | None,
) -> uuid.UUID:
    canonical = orjson.dumps(
        [str(user_id), "deal", str(deal_id), inputs, sorted(addons), idempotency_key],
        option=orjson.OPT_SORT_KEYS,
    )
    return uuid.uuid5(REQUEST_ID_NAMESPACE, canonical.decode())


@dataclass(frozen=True, slots=True)
class DealSubmission:
    id: uuid.UUID
    status: RequestStatus
    price: int
    duplicate: bool


def plan(
    deal: Deal,
    addons: list[Offer],
    inputs: dict[str, str],
    *,
    request_id: uuid.UUID,
    traceparent: str,
    max_prompt_chars: int,
) -> tuple[int, list[repository.NewStep], list[str]]:
    """The price, the steps, and the tasks of the steps that start now."""
    price, step_prices = deal.quote(addons)
    offers = [(s.offer, "primary", s.mode) for s in deal.steps]
    offers += [(a, "addon", None) for a in addons]
    steps: list[repository.NewStep] = []
    payloads: list[str] = []
    for idx, ((offer, role, mode), share) in enumerate(zip(offers, step_prices, strict=True)):
        waits = deal.pipeline and role == "primary" and idx > 0
        prompt = None if waits else offer.template.render(inputs)
        if prompt is not None and len(prompt) > max_prompt_chars:
            raise InvalidInputs(
                f"the prompt of step {idx} is {len(prompt)} characters long; "
                f"the limit is {max_prompt_chars}",
                limit=max_prompt_chars,
            )
        steps.append(repository.NewStep(idx, offer.id, role, mode, share, prompt))
        if prompt is not None:
            task = TaskMessage(
                request_id=request_id,
                traceparent=traceparent,
                attempt=1,
                handler=offer.handler,
                prompt=prompt,
                params=offer.params,
                create_qty=offer.create_qty,
                step=idx,
            )
            payloads.append(task.model_dump_json(exclude_none=True))
    return price, steps, payloads


async def submit_deal(
    pool: asyncpg.Pool[Any],
    *,
    user: Principal,
    deal: Deal,
    inputs: dict[str, Any],
    addon_names: list[str],
    idempotency_key: str | None,
    traceparent: str | None,
    max_prompt_chars: int,
    max_unfinished: int,
    stream: str,
) -> DealSubmission:
    addons = check_inputs(deal, inputs, addon_names)
    request_id = derive_deal_request_id(user.id, deal.id, inputs, addon_names, idempotency_key)
    if max_unfinished > 0:
        await check_unfinished(pool, user, request_id, max_unfinished)
    trace = valid_traceparent(traceparent) or new_traceparent()
    price, steps, payloads = plan(
        deal,
        addons,
        inputs,
        request_id=request_id,
        traceparent=trace,
        max_prompt_chars=max_prompt_chars,
    )
    new = repository.NewDealRequest(
        id=request_id,
        user_id=user.id,
        deal_id=deal.id,
        inputs=inputs,
        price=price,
        traceparent=trace,
        steps=steps,
        payloads=payloads,
        idempotency_key=idempotency_key,
    )
    try:
        created = await repository.insert_deal_request(pool, new, stream=stream)
    except KeyReused as exc:
        raise InvalidInputs(KEY_REUSED) from exc
    except ShortBalance as exc:
        raise InsufficientCredits(
            f"this deal costs {price} credits, more than your available balance", price=price
        ) from exc
    if created:
        return DealSubmission(request_id, RequestStatus.PENDING, price, duplicate=False)
    existing = await get_status(pool, request_id, user.id)
    if existing is None:  # pragma: no cover - ids are per user, so only a racing delete
        raise BadRequest("the request could not be recorded; try again")
    return DealSubmission(
        request_id, RequestStatus(existing["status"]), existing["price"], duplicate=True
    )
