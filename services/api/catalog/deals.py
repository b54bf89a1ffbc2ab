"""Deals: offers sold together, as the catalog holds them (the door is ``services.api.deals``).

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

from libs.catalog import deal_price, shares
from libs.db import PgPool
from libs.logs import get_logger
from services.api.catalog import repository
from services.api.catalog.service import Offer, OfferCatalog

log = get_logger(__name__)


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
    """Enabled deals whose primary offers are all enabled (and none of whose offers has
    per-token prices or file inputs), reloaded every ``refresh_s``."""

    def __init__(self, pool: PgPool, offers: OfferCatalog, *, refresh_s: float) -> None:
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
                named = [o for o, _ in steps] + [offers.get(a) for a in row["addons"]]
                if any(o is not None and o.token_priced for o in named):
                    # Written around the catalog's checks: a deal's price is fixed.
                    log.error("deal.token_priced_refused", deal=row["slug"])
                    continue
                if any(o is not None and o.files for o in named):
                    # Written around the catalog's checks: a deal's inputs are text.
                    log.error("deal.files_refused", deal=row["slug"])
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
