"""Apply a catalog idempotently: applying the same file twice changes nothing. What the file no
longer names is disabled, never deleted (requests keep pointing at it)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, Literal

import asyncpg

from libs.catalog import model_store, prompt_store
from libs.catalog.errors import ModelInUseError, UnknownReferenceError
from libs.catalog.models import split_ref
from libs.catalog.spec import (
    CatalogSpec,
    DealSpec,
    HandlerSpec,
    OfferSpec,
    files_in_deal,
    token_priced_in_deal,
)
from libs.db import PgConnection
from libs.security.params import url_values
from libs.security.ssrf import UnsafeUrlError, UrlPolicy, check_url

_UPSERT_HANDLER = """
INSERT INTO handlers (id, credits, params, max_concurrency, enabled)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (id) DO UPDATE SET
    credits = EXCLUDED.credits, params = EXCLUDED.params,
    max_concurrency = EXCLUDED.max_concurrency, enabled = EXCLUDED.enabled
"""

_UPSERT_OFFER = """
INSERT INTO offers (id, service, action, price, prompt_template, handler_id, create_qty,
                    expiration, params, enabled, input_price, output_price, max_output_tokens,
                    aliases, files, tiers, default_tier, model, model_version, fallbacks)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18,
        $19, $20)
ON CONFLICT (service, action) DO UPDATE SET
    price = EXCLUDED.price, prompt_template = EXCLUDED.prompt_template,
    handler_id = EXCLUDED.handler_id, create_qty = EXCLUDED.create_qty,
    expiration = EXCLUDED.expiration, params = EXCLUDED.params, enabled = EXCLUDED.enabled,
    input_price = EXCLUDED.input_price, output_price = EXCLUDED.output_price,
    max_output_tokens = EXCLUDED.max_output_tokens, aliases = EXCLUDED.aliases,
    files = EXCLUDED.files, tiers = EXCLUDED.tiers, default_tier = EXCLUDED.default_tier,
    model = EXCLUDED.model, model_version = EXCLUDED.model_version,
    fallbacks = EXCLUDED.fallbacks
"""

_UPSERT_DEAL = """
INSERT INTO deals (id, slug, price, price_modifier, addons_modifier, pipeline, offers, addons,
                   enabled)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (slug) DO UPDATE SET
    price = EXCLUDED.price, price_modifier = EXCLUDED.price_modifier,
    addons_modifier = EXCLUDED.addons_modifier, pipeline = EXCLUDED.pipeline,
    offers = EXCLUDED.offers, addons = EXCLUDED.addons, enabled = EXCLUDED.enabled
"""

_DISABLE_HANDLERS = "UPDATE handlers SET enabled = false WHERE enabled AND id <> ALL($1::text[])"
_DISABLE_OFFERS = """
UPDATE offers SET enabled = false
WHERE enabled AND service || '/' || action <> ALL($1::text[])
"""
_DISABLE_DEALS = "UPDATE deals SET enabled = false WHERE enabled AND slug <> ALL($1::text[])"


_RETURNING_CREATED = " RETURNING (xmax = 0) AS created"
"""A row that an upsert inserted has no xmax; one it updated has."""

_UNKNOWN_OFFERS = """
SELECT name FROM unnest($1::text[]) AS name
WHERE NOT EXISTS (SELECT 1 FROM offers o WHERE o.service || '/' || o.action = name)
"""

_TOKEN_PRICED = "(o.input_price IS NOT NULL OR o.output_price IS NOT NULL)"
_NOT_FOR_DEALS = f"({_TOKEN_PRICED} OR o.files <> '{{}}'::jsonb)"
"""Offers no deal may name: a deal's price is fixed and its inputs are text."""
_NAMED = """(SELECT step ->> 'offer' AS name FROM jsonb_array_elements(d.offers) step
     UNION ALL SELECT addon FROM jsonb_array_elements_text(d.addons) addon)"""

_NOT_FOR_DEALS_AMONG = f"""
SELECT o.service || '/' || o.action AS name, {_TOKEN_PRICED} AS token_priced FROM offers o
WHERE o.service || '/' || o.action = ANY($1::text[]) AND {_NOT_FOR_DEALS}
ORDER BY 1 LIMIT 1
"""
_DEAL_NAMING = f"""
SELECT d.slug, n.name FROM deals d CROSS JOIN LATERAL {_NAMED} n
WHERE d.enabled AND n.name = $1
ORDER BY 1 LIMIT 1
"""
_DEAL_NAMING_NOT_FOR_DEALS = f"""
SELECT d.slug, n.name, {_TOKEN_PRICED} AS token_priced FROM deals d CROSS JOIN LATERAL {_NAMED} n
JOIN offers o ON o.service || '/' || o.action = n.name
WHERE d.enabled AND {_NOT_FOR_DEALS}
ORDER BY 1, 2 LIMIT 1
"""

_DISABLE = {
    "handler": "UPDATE handlers SET enabled = false WHERE id = $1 RETURNING id",
    "offer": "UPDATE offers SET enabled = false WHERE service || '/' || action = $1 RETURNING id",
    "deal": "UPDATE deals SET enabled = false WHERE slug = $1 RETURNING id",
}


class NotForDealsError(ValueError):
    """A deal would name an offer that no deal may name."""


class TokenPricedDealError(NotForDealsError):
    """A deal would name an offer with per-token prices: a deal's price is fixed at submission."""


class FileInputsDealError(NotForDealsError):
    """A deal would name an offer with file inputs: a deal's inputs are text (its steps share
    them), so such offers are sold on their own."""


class AliasTakenError(ValueError):
    """An enabled offer would have an alias another enabled offer has."""


ALIASES_UNIQUE = "offers_aliases_unique"
"""The constraint trigger that keeps an alias to one enabled offer (migration 0018)."""


@contextmanager
def _aliases_checked() -> Iterator[None]:
    try:
        yield
    except asyncpg.UniqueViolationError as exc:
        if exc.constraint_name == ALIASES_UNIQUE:
            raise AliasTakenError(exc.args[0]) from exc
        raise


def handler_row(h: HandlerSpec) -> tuple[object, ...]:
    """The columns of ``h``, as ``_UPSERT_HANDLER`` takes them."""
    return (h.id, h.credits, h.params, h.max_concurrency, h.enabled)


def offer_row(o: OfferSpec) -> tuple[object, ...]:
    """The columns of ``o`` after its (new) id, as ``_UPSERT_OFFER`` takes them."""
    return (
        o.service,
        o.action,
        o.price,
        o.prompt_template,
        o.handler,
        o.create_qty,
        o.expiration,
        o.params,
        o.enabled,
        o.input_price,
        o.output_price,
        o.max_output_tokens,
        list(o.aliases),
        {name: spec.model_dump() for name, spec in o.files.items()},
        dict(o.tiers),
        o.default_tier,
        *(split_ref(o.model) if o.model is not None else (None, None)),
        [f.model_dump() for f in o.fallbacks],
    )


def deal_row(deal: DealSpec) -> tuple[object, ...]:
    """The columns of ``deal`` after its id, as ``_UPSERT_DEAL`` takes them."""
    steps = [
        {"offer": step.offer, **({"mode": mode} if mode else {})}
        for step, mode in zip(deal.offers, deal.modes(), strict=True)
    ]
    return (
        deal.slug,
        deal.price,
        deal.price_modifier,
        deal.addons_modifier,
        deal.pipeline,
        steps,
        list(deal.addons),
        deal.enabled,
    )


async def upsert_handler(conn: PgConnection, h: HandlerSpec) -> bool:
    """Create or update one handler; True when it was created."""
    return bool(await conn.fetchval(_UPSERT_HANDLER + _RETURNING_CREATED, *handler_row(h)))


async def upsert_offer(conn: PgConnection, o: OfferSpec) -> bool:
    """Create or update one offer; True when it was created. Raises ``UnknownReferenceError``
    when its handler does not exist, ``TokenPricedDealError`` (``FileInputsDealError``) when it
    has token prices (file inputs) and an enabled deal names it, ``AliasTakenError`` when it is
    enabled and another enabled offer has one of its aliases."""
    if o.model is not None and o.enabled:
        await model_store.check_offer_model(conn, f"{o.service}/{o.action}", o.handler, o.model)
    if o.token_priced or o.files:
        row = await conn.fetchrow(_DEAL_NAMING, f"{o.service}/{o.action}")
        if row is not None:
            _refuse_deal(row["slug"], row["name"], token_priced=o.token_priced)
    try:
        async with conn.transaction():
            with _aliases_checked():
                created = await conn.fetchval(
                    _UPSERT_OFFER + _RETURNING_CREATED, uuid.uuid4(), *offer_row(o)
                )
            await model_store.no_stranded_offer(conn)
            return bool(created)
    except asyncpg.ForeignKeyViolationError as exc:
        raise UnknownReferenceError(f"unknown handler {o.handler!r}") from exc
    except ModelInUseError as exc:
        raise UnknownReferenceError(str(exc)) from exc


async def upsert_deal(conn: PgConnection, deal: DealSpec) -> bool:
    """Create or update one deal; True when it was created. Raises ``UnknownReferenceError``
    when it names offers that do not exist, ``TokenPricedDealError`` when one has token
    prices, ``FileInputsDealError`` when one has file inputs."""
    names = [s.offer for s in deal.offers] + list(deal.addons)
    unknown = [r["name"] for r in await conn.fetch(_UNKNOWN_OFFERS, names)]
    if unknown:
        raise UnknownReferenceError("unknown offers: " + ", ".join(unknown))
    refused = await conn.fetchrow(_NOT_FOR_DEALS_AMONG, names)
    if refused is not None:
        _refuse_deal(deal.slug, refused["name"], token_priced=refused["token_priced"])
    return bool(
        await conn.fetchval(_UPSERT_DEAL + _RETURNING_CREATED, uuid.uuid4(), *deal_row(deal))
    )


def _refuse_deal(slug: str, offer: str, *, token_priced: bool) -> None:
    """The error for deal ``slug`` naming ``offer``, which has token prices or file inputs."""
    if token_priced:
        raise TokenPricedDealError(token_priced_in_deal(slug, offer))
    raise FileInputsDealError(files_in_deal(slug, offer))


async def disable(conn: PgConnection, kind: Literal["handler", "offer", "deal"], name: str) -> bool:
    """Disable the handler, offer (``service/action``) or deal ``name``; False if none (a model
    version: ``model_store.disable_model``)."""
    return await conn.fetchval(_DISABLE[kind], name) is not None


async def check_catalog_urls(spec: CatalogSpec, policy: UrlPolicy) -> None:
    """Refuse (``UnsafeUrlError``, naming the entry and the param) a handler or offer whose
    params hold, at any depth, a URL that points where ``policy`` does not allow (see
    ``libs.security.ssrf``): ``base_url``, ``url``, any ``*_url``, any string with a scheme."""
    entries = [(f"handler {h.id}", h.params) for h in spec.handlers] + [
        (f"offer {o.service}/{o.action}", o.params) for o in spec.offers
    ]
    for name, params in entries:
        await check_params_urls(name, params, policy)


async def check_params_urls(name: str, params: dict[str, Any], policy: UrlPolicy) -> None:
    """:func:`check_catalog_urls` for the params of one entry, called ``name`` in errors."""
    for path, value in url_values(params):
        if not isinstance(value, str):
            raise UnsafeUrlError(f"{name}: {path} must be a URL string")
        try:
            await check_url(value, policy)
        except UnsafeUrlError as exc:
            raise UnsafeUrlError(f"{name}: {path}: {exc}") from exc


async def apply_catalog(
    conn: PgConnection,
    spec: CatalogSpec,
    *,
    prune: bool = True,
    ssrf_allow: Iterable[str] = (),
) -> None:
    """Upsert every handler, model, offer, deal and prompt template of ``spec`` in one
    transaction (a template keeps its ``usage_count``), after checking the
    URLs in their params against the SSRF guard (``ssrf_allow``: what ``RELAI_SSRF_ALLOW`` lets
    through; an unsafe URL writes nothing); with ``prune``, also disable those it does not name.
    An enabled deal left naming a token-priced offer (one the file does not name, without
    ``prune``) is a ``TokenPricedDealError`` (one with file inputs a ``FileInputsDealError``),
    an enabled offer the file does not name that has one of its aliases (without ``prune``) an
    ``AliasTakenError``, and nothing is written."""
    await check_catalog_urls(spec, UrlPolicy.from_allow(ssrf_allow))
    async with conn.transaction():
        # An alias may move from one offer to another: checked once every offer is written.
        await conn.execute(f"SET CONSTRAINTS {ALIASES_UNIQUE} DEFERRED")
        await conn.executemany(
            _UPSERT_HANDLER,
            [handler_row(h) for h in spec.handlers],
        )
        defaults = [m for m in spec.models if m.default]
        await conn.execute(
            model_store.CLEAR_DEFAULTS, [m.name for m in defaults], [m.ref for m in defaults]
        )
        await conn.executemany(model_store.UPSERT, [model_store.model_row(m) for m in spec.models])
        await conn.executemany(_UPSERT_OFFER, [(uuid.uuid4(), *offer_row(o)) for o in spec.offers])
        await conn.executemany(_UPSERT_DEAL, [(uuid.uuid4(), *deal_row(d)) for d in spec.deals])
        await conn.executemany(
            prompt_store.UPSERT,
            [prompt_store.template_row(t) for t in spec.prompt_templates],
        )
        if prune:
            await conn.execute(_DISABLE_HANDLERS, [h.id for h in spec.handlers])
            await conn.execute(model_store.DISABLE_OTHERS, [m.ref for m in spec.models])
            await conn.execute(_DISABLE_OFFERS, [f"{o.service}/{o.action}" for o in spec.offers])
            await conn.execute(_DISABLE_DEALS, [d.slug for d in spec.deals])
            await conn.execute(prompt_store.DISABLE_OTHERS, [t.name for t in spec.prompt_templates])
        await model_store.no_stranded_offer(conn)
        refused = await conn.fetchrow(_DEAL_NAMING_NOT_FOR_DEALS)
        if refused is not None:
            _refuse_deal(refused["slug"], refused["name"], token_priced=refused["token_priced"])
        with _aliases_checked():
            await conn.execute(f"SET CONSTRAINTS {ALIASES_UNIQUE} IMMEDIATE")
