from pathlib import Path
from typing import Any

import asyncpg
import yaml

from libs.catalog import apply_catalog, catalog_yaml, export_catalog, load_catalog_file
from tests.integration.cli.conftest import Relai

ROOT = Path(__file__).resolve().parents[3]
DEMO = ROOT / "catalog" / "demo.yaml"

OFFERS = """SELECT o.id, o.service, o.action, o.price, o.prompt_template, o.handler_id,
                  o.params, o.create_qty, o.expiration, o.enabled, o.input_price,
                  o.output_price, o.max_output_tokens, o.aliases, o.files
           FROM offers o ORDER BY service, action"""
DEALS = "SELECT * FROM deals ORDER BY slug"


async def _apply(pool: "asyncpg.Pool[Any]", path: Path) -> None:
    async with pool.acquire() as conn:
        await apply_catalog(conn, load_catalog_file(path))


async def test_demo_catalog_applies_idempotently(
    relai: Relai, db_pool: "asyncpg.Pool[Any]"
) -> None:
    first = relai("catalog", "apply", str(DEMO))
    assert first.returncode == 0, first.stderr
    assert "5 handlers, 8 offers, 2 deals" in first.stdout
    before = [dict(row) for row in await db_pool.fetch(OFFERS)]
    handlers_before = [dict(row) for row in await db_pool.fetch("SELECT * FROM handlers")]
    deals_before = [dict(row) for row in await db_pool.fetch(DEALS)]

    second = relai("catalog", "apply", str(DEMO))

    assert second.returncode == 0, second.stderr
    assert [dict(row) for row in await db_pool.fetch(OFFERS)] == before
    assert [dict(row) for row in await db_pool.fetch("SELECT * FROM handlers")] == handlers_before
    assert [dict(row) for row in await db_pool.fetch(DEALS)] == deals_before
    assert [(d["slug"], d["pipeline"], d["offers"]) for d in deals_before] == [
        (
            "echo-twice",
            True,
            [{"offer": "demo/echo", "mode": "overwrite"}, {"offer": "demo/ask", "mode": "extend"}],
        ),
        ("greet-and-echo", False, [{"offer": "demo/greet"}, {"offer": "demo/echo"}]),
    ]
    summary = {
        f"{o['service']}/{o['action']}": (o["price"], o["prompt_template"], o["handler_id"])
        for o in before
    }
    assert summary == {
        "demo/ask": (1, "{prompt}", "echo.text"),
        "demo/echo": (1, "{text}", "echo.text"),
        "demo/greet": (2, "Hello {name}! Tell me about {topic}.", "echo.text"),
        "demo/slow": (1, "{text}", "echo.delay"),
        "demo/stream": (1, "{text}", "echo.stream"),
        "demo/words": (1, "{text}", "echo.text"),
        "image/draw": (2, "{text}", "image.draw"),
        "image/grayscale": (3, "grayscale", "image.transform"),
    }
    assert {o["action"]: o["aliases"] for o in before if o["aliases"]} == {"ask": ["relai-echo"]}
    slow = next(o for o in before if o["action"] == "slow")
    assert slow["params"] == {"delay_ms": 1000}
    grayscale = next(o for o in before if o["action"] == "grayscale")
    assert grayscale["files"]["image"]["max_bytes"] == 10 * 1024 * 1024
    words = next(o for o in before if o["action"] == "words")
    assert (words["input_price"], words["output_price"], words["max_output_tokens"]) == (
        100,
        200,
        100,
    )


async def test_invalid_catalog_writes_nothing(
    relai: Relai, db_pool: "asyncpg.Pool[Any]", tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "handlers:\n"
        "  - id: echo.text\n"
        "offers:\n"
        "  - {service: demo, action: ok, price: 1, prompt_template: '{x}', handler: echo.text}\n"
        "  - {service: demo, action: bad, price: 1, prompt_template: '{x}', handler: nope.x}\n"
    )

    result = relai("catalog", "apply", str(bad))

    assert result.returncode == 1
    assert f"{bad} is not a valid catalog" in result.stderr
    assert "names handler 'nope.x'" in result.stderr
    assert "Traceback" not in result.stderr
    assert await db_pool.fetchval("SELECT count(*) FROM handlers") == 0
    assert await db_pool.fetchval("SELECT count(*) FROM offers") == 0


async def test_unreadable_or_malformed_files_fail_clearly(relai: Relai, tmp_path: Path) -> None:
    missing = relai("catalog", "apply", str(tmp_path / "missing.yaml"))
    assert missing.returncode == 1
    assert "cannot read" in missing.stderr

    broken = tmp_path / "broken.yaml"
    broken.write_text("offers: [\n")
    malformed = relai("catalog", "apply", str(broken))
    assert malformed.returncode == 1
    assert "is not valid YAML" in malformed.stderr

    unsafe = tmp_path / "unsafe.yaml"
    unsafe.write_text(
        "handlers: [{id: echo.text}]\n"
        "offers:\n"
        "  - {service: a, action: b, price: 1, prompt_template: '{x.__class__}', "
        "handler: echo.text}\n"
    )
    refused = relai("catalog", "apply", str(unsafe))
    assert refused.returncode == 1
    assert "offers.0.prompt_template" in refused.stderr


async def test_apply_disables_what_the_file_no_longer_names(
    relai: Relai, db_pool: "asyncpg.Pool[Any]", tmp_path: Path
) -> None:
    await _apply(db_pool, DEMO)
    smaller = tmp_path / "smaller.yaml"
    smaller.write_text(
        "handlers: [{id: echo.text}]\n"
        "offers:\n"
        "  - {service: demo, action: echo, price: 1, prompt_template: '{text}', "
        "handler: echo.text}\n"
        "deals:\n"
        "  - {slug: solo, offers: [demo/echo], price: 1}\n"
    )

    result = relai("catalog", "apply", str(smaller))

    assert result.returncode == 0, result.stderr
    enabled = {
        r["name"]: r["enabled"]
        for r in await db_pool.fetch(
            "SELECT id AS name, enabled FROM handlers UNION ALL "
            "SELECT service || '/' || action, enabled FROM offers UNION ALL "
            "SELECT slug, enabled FROM deals"
        )
    }
    assert enabled == {
        "echo.text": True,
        "echo.delay": False,
        "echo.stream": False,
        "image.draw": False,
        "image.transform": False,
        "demo/echo": True,
        "demo/ask": False,
        "demo/greet": False,
        "demo/slow": False,
        "demo/stream": False,
        "demo/words": False,
        "image/draw": False,
        "image/grayscale": False,
        "solo": True,
        "greet-and-echo": False,
        "echo-twice": False,
    }
    before = [dict(row) for row in await db_pool.fetch(DEALS)]
    await _apply(db_pool, smaller)
    assert [dict(row) for row in await db_pool.fetch(DEALS)] == before


async def test_export_round_trips_through_apply(
    relai: Relai, db_pool: "asyncpg.Pool[Any]", tmp_path: Path
) -> None:
    await _apply(db_pool, DEMO)
    await db_pool.execute("UPDATE deals SET enabled = false WHERE slug = 'echo-twice'")
    exported = tmp_path / "exported.yaml"

    first = relai("catalog", "export", "--output", str(exported))
    assert first.returncode == 0, first.stderr
    offers, deals = await db_pool.fetch(OFFERS), await db_pool.fetch(DEALS)
    spec = yaml.safe_load(exported.read_text())
    assert {d["slug"]: d.get("enabled", True) for d in spec["deals"]} == {
        "echo-twice": False,
        "greet-and-echo": True,
    }
    assert next(d for d in spec["deals"] if d["slug"] == "greet-and-echo")["price_modifier"] == 10

    applied = relai("catalog", "apply", str(exported))

    assert applied.returncode == 0, applied.stderr
    assert await db_pool.fetch(OFFERS) == offers
    assert await db_pool.fetch(DEALS) == deals
    async with db_pool.acquire() as conn:
        again = catalog_yaml(await export_catalog(conn))
    assert again == exported.read_text()
