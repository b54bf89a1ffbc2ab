"""Models in the database: written one version at a time (the admin API) or all at once (a
catalog applied), never leaving an enabled offer without a version to route to."""

from __future__ import annotations

import asyncpg

from libs.catalog.errors import ModelInUseError, UnknownReferenceError
from libs.catalog.models import ModelSpec, split_ref
from libs.db import PgConnection

UPSERT = """
INSERT INTO models (name, version, description, handler_id, provider_model, context_window,
                    max_output_tokens, input_modalities, output_modalities, tokenizer,
                    deployments, max_attempts, cooldown_s, idempotent, is_default, enabled)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
ON CONFLICT (name, version) DO UPDATE SET
    description = EXCLUDED.description, handler_id = EXCLUDED.handler_id,
    provider_model = EXCLUDED.provider_model, context_window = EXCLUDED.context_window,
    max_output_tokens = EXCLUDED.max_output_tokens,
    input_modalities = EXCLUDED.input_modalities,
    output_modalities = EXCLUDED.output_modalities, tokenizer = EXCLUDED.tokenizer,
    deployments = EXCLUDED.deployments, max_attempts = EXCLUDED.max_attempts,
    cooldown_s = EXCLUDED.cooldown_s, idempotent = EXCLUDED.idempotent,
    is_default = EXCLUDED.is_default, enabled = EXCLUDED.enabled
"""
# The default moves from one version to another: the old one lets go first (one default per
# name is a unique index, checked row by row).
CLEAR_DEFAULTS = """
UPDATE models SET is_default = false
WHERE is_default AND name = ANY($1::text[]) AND name || '@' || version <> ALL($2::text[])
"""
DISABLE_OTHERS = """
UPDATE models SET enabled = false, is_default = false
WHERE enabled AND name || '@' || version <> ALL($1::text[])
"""
_DISABLE = """
UPDATE models SET enabled = false, is_default = false WHERE name || '@' || version = $1
RETURNING name
"""
_HANDLER_OF = """
SELECT handler_id FROM models
WHERE name = $1 AND enabled AND (version = $2 OR ($2::text IS NULL AND is_default))
"""
_RETURNING_CREATED = " RETURNING (xmax = 0) AS created"


def _resolves(name: str, version: str) -> str:
    """SQL: an enabled version of model ``name`` is ``version``, or (null) its default."""
    return f"""EXISTS (SELECT 1 FROM models m WHERE m.enabled AND m.name = {name}
        AND (m.version = {version} OR ({version} IS NULL AND m.is_default)))"""


_FALLBACK_NAME = "split_part(f ->> 'model', '@', 1)"
_FALLBACK_VERSION = "nullif(split_part(f ->> 'model', '@', 2), '')"
# An enabled offer left without a model version to route to, or with a fallback that names none.
_STRANDED_OFFER = f"""
SELECT o.service || '/' || o.action AS offer,
       o.model || coalesce('@' || o.model_version, '') AS model
FROM offers o
WHERE o.enabled AND o.model IS NOT NULL AND (
    NOT {_resolves("o.model", "o.model_version")}
    OR EXISTS (SELECT 1 FROM jsonb_array_elements(o.fallbacks) f
               WHERE NOT {_resolves(_FALLBACK_NAME, _FALLBACK_VERSION)}))
ORDER BY 1 LIMIT 1
"""


def model_row(m: ModelSpec) -> tuple[object, ...]:
    """The columns of ``m``, as ``UPSERT`` takes them."""
    return (
        m.name,
        m.version,
        m.description,
        m.handler,
        m.provider_model or m.name,
        m.context_window,
        m.max_output_tokens,
        list(m.input_modalities),
        list(m.output_modalities),
        m.tokenizer,
        [d.model_dump(exclude_none=True) for d in m.deployments],
        m.max_attempts,
        m.cooldown_s,
        m.idempotent,
        m.default,
        m.enabled,
    )


async def no_stranded_offer(conn: PgConnection) -> None:
    """Raise ``ModelInUseError`` if an enabled offer has no enabled version of its model, or
    of one of its fallbacks, to route to (in the caller's transaction, which it aborts)."""
    row = await conn.fetchrow(_STRANDED_OFFER)
    if row is not None:
        raise ModelInUseError(
            f"offer {row['offer']} would have no enabled version of model {row['model']} (or "
            "of one of its fallbacks) to route to: make another version the default first, or "
            "disable the offer"
        )


async def check_offer_model(conn: PgConnection, offer: str, handler: str, ref: str) -> None:
    """Raise ``UnknownReferenceError`` unless ``ref`` names an enabled version called by
    ``handler``, the handler of offer ``offer``."""
    name, version = split_ref(ref)
    found = await conn.fetchval(_HANDLER_OF, name, version)
    if found is None:
        raise UnknownReferenceError(
            f"unknown model {ref!r}"
            + ("" if version else " (or it has no enabled default version)")
        )
    if found != handler:
        raise UnknownReferenceError(
            f"offer {offer} runs handler {handler!r} but its model {ref} is called by {found!r}"
        )


async def upsert_model(conn: PgConnection, m: ModelSpec) -> bool:
    """Create or update one model version; True when it was created. As the default, it takes
    over from the name's other versions in the same transaction. Raises
    ``UnknownReferenceError`` when its handler does not exist, ``ModelInUseError`` when the
    change leaves an enabled offer without a version to route to (nothing written)."""
    async with conn.transaction():
        if m.default:
            await conn.execute(CLEAR_DEFAULTS, [m.name], [m.ref])
        try:
            created = await conn.fetchval(UPSERT + _RETURNING_CREATED, *model_row(m))
        except asyncpg.ForeignKeyViolationError as exc:
            raise UnknownReferenceError(f"unknown handler {m.handler!r}") from exc
        await no_stranded_offer(conn)
        return bool(created)


async def disable_model(conn: PgConnection, ref: str) -> bool:
    """Disable the model version ``ref`` (``name@version``); False if none. Raises
    ``ModelInUseError``, having changed nothing, when an enabled offer routes to it (pinned to
    it, or to the model's default and it is the default)."""
    async with conn.transaction():
        if await conn.fetchval(_DISABLE, ref) is None:
            return False
        await no_stranded_offer(conn)
        return True
