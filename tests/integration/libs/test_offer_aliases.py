"""Offer aliases against the real Postgres: they round-trip through apply and export, and no two
enabled offers share one, however the offers are written (one by one, a whole file, plain SQL,
two writers at once)."""

import asyncio
from typing import Any

import asyncpg
import pytest

from libs.catalog import (
    AliasTakenError,
    CatalogSpec,
    OfferSpec,
    apply_catalog,
    catalog_yaml,
    export_catalog,
    upsert_offer,
)

HANDLER = {"id": "echo.text"}
TAKEN = "offer m/b cannot have the alias 'gpt-4o': the offer m/a has it"


def _offer(action: str, *aliases: str, **fields: Any) -> dict[str, Any]:
    return {
        "service": "m",
        "action": action,
        "price": 1,
        "prompt_template": "{prompt}",
        "handler": "echo.text",
        "aliases": list(aliases),
        **fields,
    }


def _catalog(*offers: dict[str, Any]) -> CatalogSpec:
    return CatalogSpec.model_validate({"handlers": [HANDLER], "offers": list(offers)})


async def _apply(pool: "asyncpg.Pool[Any]", spec: CatalogSpec, *, prune: bool = True) -> None:
    async with pool.acquire() as conn:
        await apply_catalog(conn, spec, prune=prune)


async def _aliases(pool: "asyncpg.Pool[Any]") -> dict[str, tuple[list[str], bool]]:
    rows = await pool.fetch("SELECT action, aliases, enabled FROM offers ORDER BY action")
    return {r["action"]: (r["aliases"], r["enabled"]) for r in rows}


async def test_aliases_round_trip_through_apply_and_export(db_pool: "asyncpg.Pool[Any]") -> None:
    spec = _catalog(
        _offer("a", "gpt-4o", "gpt-4o-mini"), _offer("b"), _offer("c", "gpt-4o", enabled=False)
    )
    await _apply(db_pool, spec)
    assert await _aliases(db_pool) == {
        "a": (["gpt-4o", "gpt-4o-mini"], True),
        "b": ([], True),
        "c": (["gpt-4o"], False),
    }
    async with db_pool.acquire() as conn:
        exported = await export_catalog(conn)
        assert exported == spec
        await apply_catalog(conn, exported)
        assert catalog_yaml(await export_catalog(conn)) == catalog_yaml(spec)


async def test_an_offer_written_alone_cannot_take_an_enabled_offer_s_alias(
    db_pool: "asyncpg.Pool[Any]",
) -> None:
    await _apply(db_pool, _catalog(_offer("a", "gpt-4o"), _offer("b")))
    async with db_pool.acquire() as conn:
        with pytest.raises(AliasTakenError, match=TAKEN):
            await upsert_offer(conn, OfferSpec.model_validate(_offer("b", "other", "gpt-4o")))
        with pytest.raises(AliasTakenError, match=TAKEN):
            await upsert_offer(conn, OfferSpec.model_validate(_offer("b", "gpt-4o", price=2)))
        assert await _aliases(db_pool) == {"a": (["gpt-4o"], True), "b": ([], True)}
        # A disabled offer may have it, and (re-)enabling it is what is refused.
        await upsert_offer(conn, OfferSpec.model_validate(_offer("b", "gpt-4o", enabled=False)))
        with pytest.raises(AliasTakenError, match=TAKEN):
            await upsert_offer(conn, OfferSpec.model_validate(_offer("b", "gpt-4o")))
        # Once the first lets it go, it is free.
        assert await upsert_offer(conn, OfferSpec.model_validate(_offer("a"))) is False
        assert await upsert_offer(conn, OfferSpec.model_validate(_offer("b", "gpt-4o"))) is False
    assert await _aliases(db_pool) == {"a": ([], True), "b": (["gpt-4o"], True)}


async def test_a_file_moves_an_alias_between_offers_whatever_their_order(
    db_pool: "asyncpg.Pool[Any]",
) -> None:
    await _apply(db_pool, _catalog(_offer("a", "gpt-4o"), _offer("b", "gpt-4o-mini")))
    await _apply(db_pool, _catalog(_offer("a", "gpt-4o-mini"), _offer("b", "gpt-4o")))
    assert await _aliases(db_pool) == {"a": (["gpt-4o-mini"], True), "b": (["gpt-4o"], True)}
    # An offer the file no longer names is disabled, which frees its aliases.
    await _apply(db_pool, _catalog(_offer("c", "gpt-4o")))
    assert (await _aliases(db_pool))["c"] == (["gpt-4o"], True)


async def test_a_file_that_leaves_an_alias_to_an_offer_it_does_not_name_writes_nothing(
    db_pool: "asyncpg.Pool[Any]",
) -> None:
    await _apply(db_pool, _catalog(_offer("a", "gpt-4o")))
    before = await _aliases(db_pool)
    with pytest.raises(AliasTakenError, match=TAKEN):
        await _apply(db_pool, _catalog(_offer("b", "gpt-4o"), _offer("c", "x")), prune=False)
    assert await _aliases(db_pool) == before


async def test_the_database_refuses_a_shared_alias_written_in_plain_sql(
    db_pool: "asyncpg.Pool[Any]",
) -> None:
    await _apply(db_pool, _catalog(_offer("a", "gpt-4o"), _offer("b", "x", enabled=False)))
    with pytest.raises(asyncpg.UniqueViolationError, match=TAKEN) as refused:
        await db_pool.execute(
            "UPDATE offers SET aliases = '{gpt-4o}', enabled = true WHERE action = 'b'"
        )
    assert refused.value.constraint_name == "offers_aliases_unique"
    assert (await _aliases(db_pool))["b"] == (["x"], False)


async def test_two_writers_of_one_alias_at_once_cannot_both_commit(
    db_pool: "asyncpg.Pool[Any]",
) -> None:
    await _apply(db_pool, _catalog(_offer("a"), _offer("b")))
    async with db_pool.acquire() as first, db_pool.acquire() as second:
        first_tx = first.transaction()
        await first_tx.start()
        await upsert_offer(first, OfferSpec.model_validate(_offer("a", "gpt-4o")))
        # The second waits for the first to end, then sees what it committed.
        racing = asyncio.create_task(
            upsert_offer(second, OfferSpec.model_validate(_offer("b", "gpt-4o")))
        )
        await asyncio.sleep(0.3)
        assert not racing.done()
        await first_tx.commit()
        with pytest.raises(AliasTakenError, match=TAKEN):
            await racing
    assert await _aliases(db_pool) == {"a": (["gpt-4o"], True), "b": ([], True)}
