"""The prompt template library in Postgres: write, list, read, fill and disable templates.

Filling a template counts the use in the statement that reads it, so that concurrent fills
each count once; a fill that fails (values missing or unknown) counts nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from libs.catalog.prompt_templates import PromptTemplateSpec, fill
from libs.catalog.template import PromptTemplate
from libs.db import PgConnection

_FIELDS = (
    "name",
    "description",
    "category",
    "template",
    "example_input",
    "example_output",
    "tags",
    "active",
)
_COLUMNS = ", ".join(_FIELDS)
_CHANGED = ", ".join(f"{name} = EXCLUDED.{name}" for name in _FIELDS[1:])
_OLD = ", ".join(f"prompt_templates.{name}" for name in _FIELDS[1:])
_NEW = ", ".join(f"EXCLUDED.{name}" for name in _FIELDS[1:])
# Writing a template as it is changes nothing, not even ``updated_at``.
UPSERT = f"""
INSERT INTO prompt_templates ({_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (name) DO UPDATE SET {_CHANGED}, updated_at = now()
WHERE ({_OLD}) IS DISTINCT FROM ({_NEW})
"""
_RETURNING_CREATED = " RETURNING (xmax = 0) AS created"
SELECT = f"SELECT {_COLUMNS} FROM prompt_templates ORDER BY name"
_SELECT_RECORDS = f"SELECT {_COLUMNS}, usage_count, created_at, updated_at FROM prompt_templates"
_LIST = f"""{_SELECT_RECORDS}
WHERE ($1::text IS NULL OR category = $1) AND ($2::text IS NULL OR $2 = ANY(tags))
  AND ($3::boolean IS NULL OR active = $3)
ORDER BY name LIMIT $4 OFFSET $5
"""
_GET = f"{_SELECT_RECORDS} WHERE name = $1"
_COUNT_USE = """
UPDATE prompt_templates SET usage_count = usage_count + 1
WHERE name = $1 AND active RETURNING template, usage_count
"""
_ACTIVE = "SELECT active FROM prompt_templates WHERE name = $1"
_DISABLE = """
UPDATE prompt_templates SET active = false,
    updated_at = CASE WHEN active THEN now() ELSE updated_at END
WHERE name = $1 RETURNING name
"""
DISABLE_OTHERS = """
UPDATE prompt_templates SET active = false, updated_at = now()
WHERE active AND name <> ALL($1::text[])
"""


class PromptTemplateNotFoundError(LookupError):
    """No prompt template by that name."""


class PromptTemplateInactiveError(ValueError):
    """The prompt template is disabled: it is not filled."""


@dataclass(frozen=True, slots=True)
class StoredPromptTemplate:
    """A template as the library holds it: the entry, and what the database adds."""

    spec: PromptTemplateSpec
    usage_count: int
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Rendered:
    name: str
    text: str
    usage_count: int
    """The template's uses, this one included."""


def template_row(t: PromptTemplateSpec) -> tuple[object, ...]:
    """The columns of ``t``, as ``UPSERT`` takes them."""
    return (
        t.name,
        t.description,
        t.category,
        t.template,
        dict(t.example_input),
        t.example_output,
        list(t.tags),
        t.active,
    )


def _stored(row: asyncpg.Record) -> StoredPromptTemplate:
    return StoredPromptTemplate(
        spec=PromptTemplateSpec.model_validate({name: row[name] for name in _FIELDS}),
        usage_count=row["usage_count"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


async def upsert_prompt_template(conn: PgConnection, t: PromptTemplateSpec) -> bool:
    """Create or update the template ``t.name``, its uses kept; True when it was created."""
    return bool(await conn.fetchval(UPSERT + _RETURNING_CREATED, *template_row(t)))


async def list_prompt_templates(
    conn: PgConnection,
    *,
    category: str | None = None,
    tag: str | None = None,
    active: bool | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[StoredPromptTemplate]:
    """The templates, by name, of ``category``, with ``tag``, active or not, as given."""
    rows = await conn.fetch(_LIST, category, tag, active, limit, offset)
    return [_stored(row) for row in rows]


async def get_prompt_template(conn: PgConnection, name: str) -> StoredPromptTemplate | None:
    row = await conn.fetchrow(_GET, name)
    return None if row is None else _stored(row)


async def render_prompt_template(
    conn: PgConnection, name: str, variables: Mapping[str, str]
) -> Rendered:
    """The active template ``name`` filled with ``variables``, its use counted. Raises
    ``PromptTemplateNotFoundError``, ``PromptTemplateInactiveError``, or
    ``libs.catalog.prompt_templates.VariablesError`` (naming the variables missing and
    unknown); then nothing is counted."""
    async with conn.transaction():
        row = await conn.fetchrow(_COUNT_USE, name)
        if row is None:
            active = await conn.fetchval(_ACTIVE, name)
            if active is None:
                raise PromptTemplateNotFoundError(f"no prompt template {name}")
            raise PromptTemplateInactiveError(f"prompt template {name} is disabled")
        # Raising here rolls the count back.
        text = fill(PromptTemplate.parse(row["template"]), variables)
    return Rendered(name=name, text=text, usage_count=row["usage_count"])


async def disable_prompt_template(conn: PgConnection, name: str) -> bool:
    """Disable the template ``name`` (it keeps its uses); False if there is none."""
    return await conn.fetchval(_DISABLE, name) is not None
