"""Prompt templates in the catalog file: applied idempotently, exported without their uses,
pruned (disabled, never deleted) when the file no longer names them."""

from typing import Any

import asyncpg
import pytest

from libs.catalog import (
    CatalogSpec,
    VariablesError,
    apply_catalog,
    catalog_data,
    catalog_yaml,
    export_catalog,
    render_prompt_template,
)
from tests.support import ServerUrls

TEMPLATES: list[dict[str, Any]] = [
    {
        "name": "refine-image",
        "category": "image",
        "template": "{subject}, {style}, 8k",
        "example_input": {"subject": "a dragon", "style": "cinematic"},
        "example_output": "a dragon, cinematic, 8k",
        "tags": ["image"],
    },
    {"name": "plain", "template": "Say hello"},
]


def _spec(templates: list[dict[str, Any]]) -> CatalogSpec:
    return CatalogSpec.model_validate({"prompt_templates": templates})


async def test_applying_twice_changes_nothing_and_keeps_the_uses(
    servers: ServerUrls, db_pool: "asyncpg.Pool[Any]"
) -> None:
    query = "SELECT * FROM prompt_templates ORDER BY name"
    async with db_pool.acquire() as conn:
        await apply_catalog(conn, _spec(TEMPLATES))
        rendered = await render_prompt_template(
            conn, "refine-image", {"subject": "a cat", "style": "ink"}
        )
        assert (rendered.text, rendered.usage_count) == ("a cat, ink, 8k", 1)
        before = [dict(r) for r in await conn.fetch(query)]
        await apply_catalog(conn, _spec(TEMPLATES))
        assert [dict(r) for r in await conn.fetch(query)] == before
        with pytest.raises(VariablesError, match="missing variables: style") as refused:
            await render_prompt_template(conn, "refine-image", {"subject": "a cat"})
        assert refused.value.missing == ["style"]
        assert [dict(r) for r in await conn.fetch(query)] == before
    assert [r["name"] for r in before] == ["plain", "refine-image"]
    assert [r["usage_count"] for r in before] == [0, 1]


async def test_export_round_trips_without_usage_counts(
    servers: ServerUrls, db_pool: "asyncpg.Pool[Any]"
) -> None:
    async with db_pool.acquire() as conn:
        await apply_catalog(conn, _spec(TEMPLATES))
        await conn.execute("UPDATE prompt_templates SET usage_count = 3")
        exported = await export_catalog(conn)
        data = catalog_data(exported)
        assert data["prompt_templates"] == [
            {"name": "plain", "template": "Say hello"},
            TEMPLATES[0],
        ]
        assert "usage_count" not in catalog_yaml(exported)
        await apply_catalog(conn, exported)
        assert catalog_data(await export_catalog(conn)) == data
        assert await conn.fetchval("SELECT sum(usage_count) FROM prompt_templates") == 6


async def test_prune_disables_templates_the_file_no_longer_names(
    servers: ServerUrls, db_pool: "asyncpg.Pool[Any]"
) -> None:
    async with db_pool.acquire() as conn:
        await apply_catalog(conn, _spec(TEMPLATES))
        await apply_catalog(conn, _spec(TEMPLATES[1:]), prune=False)
        assert await conn.fetchval("SELECT bool_and(active) FROM prompt_templates")
        await apply_catalog(conn, _spec(TEMPLATES[1:]))
        rows = await conn.fetch("SELECT name, active FROM prompt_templates ORDER BY name")
    assert [tuple(r) for r in rows] == [("plain", True), ("refine-image", False)]


def test_a_catalog_names_each_template_once() -> None:
    with pytest.raises(ValueError, match="'plain' is defined twice"):
        _spec([TEMPLATES[1], TEMPLATES[1]])
