"""Apply a catalog idempotently: applying the same file twice changes nothing."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from typing import Any

from libs.catalog.spec import CatalogSpec
from libs.db import PgConnection
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
                    expiration, params, enabled)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
ON CONFLICT (service, action) DO UPDATE SET
    price = EXCLUDED.price, prompt_template = EXCLUDED.prompt_template,
    handler_id = EXCLUDED.handler_id, create_qty = EXCLUDED.create_qty,
    expiration = EXCLUDED.expiration, params = EXCLUDED.params, enabled = EXCLUDED.enabled
"""


def _urls(params: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    for key, value in params.items():
        if key == "url" or key.endswith("_url"):
            yield key, value


async def check_handler_urls(spec: CatalogSpec, policy: UrlPolicy) -> None:
    """Refuse (``UnsafeUrlError``, naming the handler) a handler whose ``params.base_url`` (or
    any ``*_url`` param) points at an address ``policy`` does not allow (see
    ``libs.security.ssrf``)."""
    for handler in spec.handlers:
        for key, value in _urls(handler.params):
            if not isinstance(value, str):
                raise UnsafeUrlError(f"handler {handler.id}: params.{key} must be a string")
            try:
                await check_url(value, policy)
            except UnsafeUrlError as exc:
                raise UnsafeUrlError(f"handler {handler.id}: params.{key}: {exc}") from exc


async def apply_catalog(
    conn: PgConnection, spec: CatalogSpec, *, ssrf_allow: Iterable[str] = ()
) -> None:
    """Upsert every handler and offer of ``spec`` in one transaction, after checking the
    handlers' URLs against the SSRF guard (``ssrf_allow``: what ``RELAI_SSRF_ALLOW`` lets
    through); an unsafe URL writes nothing."""
    await check_handler_urls(spec, UrlPolicy.from_allow(ssrf_allow))
    async with conn.transaction():
        await conn.executemany(
            _UPSERT_HANDLER,
            [(h.id, h.credits, h.params, h.max_concurrency, h.enabled) for h in spec.handlers],
        )
        await conn.executemany(
            _UPSERT_OFFER,
            [
                (
                    uuid.uuid4(),
                    o.service,
                    o.action,
                    o.price,
                    o.prompt_template,
                    o.handler,
                    o.create_qty,
                    o.expiration,
                    o.params,
                    o.enabled,
                )
                for o in spec.offers
            ],
        )
