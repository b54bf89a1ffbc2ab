from pathlib import Path
from typing import Any

import asyncpg

from tests.integration.cli.conftest import Relai

ROOT = Path(__file__).resolve().parents[3]
DEMO = ROOT / "catalog" / "demo.yaml"

OFFERS = """SELECT o.id, o.service, o.action, o.price, o.prompt_template, o.handler_id,
                  o.params, o.create_qty, o.expiration, o.enabled
           FROM offers o ORDER BY service, action"""


async def test_demo_catalog_applies_idempotently(
    relai: Relai, db_pool: "asyncpg.Pool[Any]"
) -> None:
    first = relai("catalog", "apply", str(DEMO))
    assert first.returncode == 0, first.stderr
    assert "3 handlers, 5 offers" in first.stdout
    before = [dict(row) for row in await db_pool.fetch(OFFERS)]
    handlers_before = [dict(row) for row in await db_pool.fetch("SELECT * FROM handlers")]

    second = relai("catalog", "apply", str(DEMO))

    assert second.returncode == 0, second.stderr
    assert [dict(row) for row in await db_pool.fetch(OFFERS)] == before
    assert [dict(row) for row in await db_pool.fetch("SELECT * FROM handlers")] == handlers_before
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
    }
    slow = next(o for o in before if o["action"] == "slow")
    assert slow["params"] == {"delay_ms": 1000}


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
