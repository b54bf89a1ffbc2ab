from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg
from pydantic import ValidationError

from libs.catalog import PromptTemplate, TemplateError
from libs.catalog.file_inputs import FileInputSpec
from libs.catalog.models import ModelSpec, with_fallbacks
from libs.contracts.models import Route
from libs.contracts.tiers import DEFAULT_TIER
from libs.logs import get_logger
from services.api.catalog import repository

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class OfferModel:
    """The model version an offer runs (``libs.catalog.models``)."""

    name: str
    version: str
    description: str
    context_window: int
    max_output_tokens: int
    tokenizer: str | None
    input_modalities: tuple[str, ...]
    output_modalities: tuple[str, ...]
    route: Route | None
    """Its deployments, put in each task; None when the handler's params say where it runs."""

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> OfferModel:
        spec = ModelSpec.model_validate(
            {
                **{k: v for k, v in row.items() if k != "handler_id"},
                "handler": row["handler_id"],
            }
        )
        return cls(
            name=spec.name,
            version=spec.version,
            description=spec.description,
            context_window=spec.context_window,
            max_output_tokens=spec.max_output_tokens,
            tokenizer=spec.tokenizer,
            input_modalities=tuple(spec.input_modalities),
            output_modalities=tuple(spec.output_modalities),
            route=spec.route(),
        )


@dataclass(frozen=True, slots=True)
class Offer:
    id: uuid.UUID
    service: str
    action: str
    price: int
    template: PromptTemplate
    handler: str
    create_qty: int
    params: dict[str, Any]
    """The handler's parameters overlaid with the offer's."""
    input_price: Decimal | None = None
    """Credits per 1,000 input tokens, beside ``price`` (``libs.catalog.pricing``)."""
    output_price: Decimal | None = None
    """Credits per 1,000 output tokens, beside ``price``."""
    max_output_tokens: int | None = None
    """The most output tokens a request may ask for, and what is reserved when it names none."""
    aliases: tuple[str, ...] = ()
    """Other names of the offer at the OpenAI-compatible door; one enabled offer has each."""
    files: Mapping[str, FileInputSpec] = field(default_factory=dict)
    """The offer's file inputs by name (never one of the template's variables)."""
    created_at: datetime | None = None
    """When the offer was first written (the ``created`` of its model at ``/v1``)."""
    tiers: Mapping[str, int] = field(default_factory=dict)
    """The priority tiers it sells beside ``default``, each at a percentage of its prices."""
    default_tier: str = DEFAULT_TIER
    """The tier of a request that names none."""
    model: OfferModel | None = None
    """The model version it runs, if it names one."""
    fallbacks: tuple[tuple[OfferModel, int], ...] = ()
    """The models that serve its requests when every deployment of ``model`` failed without
    an answer, in order, each with the percentage of the price a request served by it pays."""

    @property
    def route(self) -> Route | None:
        """Where its jobs run: its model's deployments, then its fallbacks' (None: where the
        handler's params say)."""
        if self.model is None:
            return None
        fallbacks = [m.route for m, _ in self.fallbacks if m.route is not None]
        return with_fallbacks(self.model.route, fallbacks)

    @property
    def model_percents(self) -> dict[str, int] | None:
        """What a request served by each fallback pays, by ``name@version``."""
        return {f"{m.name}@{m.version}": p for m, p in self.fallbacks} or None

    def tier_percent(self, tier: str) -> int | None:
        """What ``tier`` costs as a percentage of the offer's prices; None when not sold."""
        return 100 if tier == DEFAULT_TIER else self.tiers.get(tier)

    @property
    def tiers_sold(self) -> dict[str, int]:
        """Every tier the offer sells, ``default`` included, by percentage of its prices."""
        return {DEFAULT_TIER: 100, **self.tiers}

    @property
    def token_priced(self) -> bool:
        return self.input_price is not None or self.output_price is not None

    @property
    def required_files(self) -> tuple[str, ...]:
        return tuple(name for name, spec in self.files.items() if spec.required)


class OfferCatalog:
    """Enabled offers, kept in memory and reloaded every ``refresh_s`` seconds.

    A lookup that misses reloads at once (at most once a second), so a new offer is callable
    as soon as it is written.
    """

    _MISS_RELOAD_S = 1.0

    def __init__(self, pool: asyncpg.Pool[Any], *, refresh_s: float) -> None:
        self._pool = pool
        self._refresh_s = refresh_s
        self._offers: dict[tuple[str, str], Offer] = {}
        self._aliases: dict[str, Offer] = {}
        self._listing: tuple[Offer, ...] = ()
        self._loaded_at = float("-inf")
        self._lock = asyncio.Lock()

    async def get(self, service: str, action: str) -> Offer | None:
        return await self._lookup(lambda: self._offers.get((service, action)))

    async def by_alias(self, name: str) -> Offer | None:
        """The offer one of whose aliases is ``name``."""
        return await self._lookup(lambda: self._aliases.get(name))

    async def _lookup(self, find: Callable[[], Offer | None]) -> Offer | None:
        age = time.monotonic() - self._loaded_at
        if age > self._refresh_s:
            await self._reload()
        offer = find()
        if offer is None and age > self._MISS_RELOAD_S:
            await self._reload()
            offer = find()
        return offer

    async def list_offers(self) -> tuple[Offer, ...]:
        """Every enabled offer, sorted by service then action."""
        if time.monotonic() - self._loaded_at > self._refresh_s:
            await self._reload()
        return self._listing

    async def _reload(self) -> None:
        started = time.monotonic()
        async with self._lock:
            if self._loaded_at >= started:
                return
            rows = await repository.enabled_offers(self._pool)
            self._offers = {}
            self._aliases = {}
            for r in rows:
                try:
                    template = PromptTemplate.parse(r["prompt_template"])
                except TemplateError as exc:
                    # Written around the catalog's checks: this offer is refused, not the rest.
                    log.error(
                        "offer.template_refused",
                        offer=f"{r['service']}/{r['action']}",
                        error=str(exc),
                    )
                    continue
                if r["output_price"] is not None and r["max_output_tokens"] is None:
                    # Written around the catalog's checks: its reservation would be unbounded.
                    log.error(
                        "offer.unbounded_refused",
                        offer=f"{r['service']}/{r['action']}",
                        error="an output_price without max_output_tokens",
                    )
                    continue
                try:
                    files = _file_inputs(r["files"], template)
                except (ValidationError, ValueError) as exc:
                    # Written around the catalog's checks: its file inputs cannot be honoured.
                    log.error(
                        "offer.files_refused",
                        offer=f"{r['service']}/{r['action']}",
                        error=str(exc),
                    )
                    continue
                try:
                    model = _model(r)
                except (ValidationError, ValueError) as exc:
                    # Its model is gone, disabled or has no default: nothing could route it.
                    log.error(
                        "offer.model_refused",
                        offer=f"{r['service']}/{r['action']}",
                        error=str(exc),
                    )
                    continue
                offer = Offer(
                    id=r["id"],
                    service=r["service"],
                    action=r["action"],
                    price=r["price"],
                    template=template,
                    handler=r["handler_id"],
                    create_qty=r["create_qty"],
                    params=r["params"],
                    input_price=r["input_price"],
                    output_price=r["output_price"],
                    max_output_tokens=r["max_output_tokens"],
                    aliases=tuple(r["aliases"]),
                    files=files,
                    created_at=r["created_at"],
                    tiers=dict(r["tiers"]),
                    default_tier=r["default_tier"],
                    model=model,
                    fallbacks=tuple(
                        (OfferModel.of(f["model"]), f["percent"]) for f in r["fallbacks"]
                    ),
                )
                self._offers[(offer.service, offer.action)] = offer
                self._aliases.update(dict.fromkeys(offer.aliases, offer))
            self._listing = tuple(
                sorted(self._offers.values(), key=lambda o: (o.service, o.action))
            )
            self._loaded_at = time.monotonic()


def _model(row: asyncpg.Record) -> OfferModel | None:
    """The model version an offer's row names, or None when it names no model."""
    if row["model_name"] is None:
        return None
    if row["model"] is None:
        raise ValueError(f"model {row['model_name']!r} has no enabled version to route to")
    return OfferModel.of(row["model"])


def _file_inputs(value: Any, template: PromptTemplate) -> dict[str, FileInputSpec]:
    """An offer's ``files`` column, checked as the catalog checks it."""
    files = {name: FileInputSpec.model_validate(spec) for name, spec in (value or {}).items()}
    clash = set(files) & set(template.variables)
    if clash or any(not name.isidentifier() for name in files):
        raise ValueError("file inputs named like template variables or not identifiers")
    return files
