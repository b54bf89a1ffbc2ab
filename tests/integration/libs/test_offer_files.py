"""An offer's file inputs in the database: applied and exported as declared, and never named
by a deal, however the catalog is written."""

from typing import Any

import asyncpg
import pytest

from libs.catalog import (
    CatalogSpec,
    FileInputsDealError,
    apply_catalog,
    export_catalog,
)

HANDLER = {"id": "echo.text"}
PLAIN = {
    "service": "img",
    "action": "edit",
    "price": 1,
    "prompt_template": "{prompt}",
    "handler": "echo.text",
}
WITH_FILES = {**PLAIN, "files": {"image": {"types": ["image/png"], "max_pixels": 1000}}}


async def test_file_inputs_are_applied_and_exported_as_declared(
    db_pool: "asyncpg.Pool[Any]",
) -> None:
    spec = CatalogSpec.model_validate({"handlers": [HANDLER], "offers": [WITH_FILES]})
    async with db_pool.acquire() as conn:
        await apply_catalog(conn, spec)
        assert await export_catalog(conn) == spec
    stored = await db_pool.fetchval("SELECT files FROM offers")
    assert stored["image"]["types"] == ["image/png"]
    assert stored["image"]["max_pixels"] == 1000


async def test_file_inputs_for_an_offer_an_enabled_deal_names_are_refused(
    db_pool: "asyncpg.Pool[Any]",
) -> None:
    deal = {"slug": "d", "offers": ["img/edit"]}
    async with db_pool.acquire() as conn:
        await apply_catalog(
            conn,
            CatalogSpec.model_validate({"handlers": [HANDLER], "offers": [PLAIN], "deals": [deal]}),
        )
    # The file does not name the deal and, without pruning, leaves it enabled.
    spec = CatalogSpec.model_validate({"handlers": [HANDLER], "offers": [WITH_FILES]})
    async with db_pool.acquire() as conn:
        with pytest.raises(FileInputsDealError, match="deal 'd' names offer 'img/edit'"):
            await apply_catalog(conn, spec, prune=False)
    assert await db_pool.fetchval("SELECT files FROM offers") == {}
    async with db_pool.acquire() as conn:
        await apply_catalog(conn, spec)
    assert await db_pool.fetchval("SELECT enabled FROM deals") is False
    assert await db_pool.fetchval("SELECT files FROM offers") != {}
