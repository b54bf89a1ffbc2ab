"""Schemathesis against the API's own OpenAPI document: generated (and broken) requests to
every operation, with a valid admin key, must never meet a server error (5xx) nor get in
without credentials (``ignored_auth`` replays each with none and with a wrong one)."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path
from typing import Any

import asyncpg

from tests.integration.api.conftest import serving, settings_for
from tests.support import ServerUrls, create_user, load_demo_catalog

SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
TIME_BUDGET_S = 30


async def test_no_server_errors_and_no_auth_bypass(
    servers: ServerUrls, db_pool: asyncpg.Pool[Any], tmp_path: Path
) -> None:
    await load_demo_catalog(db_pool)
    root = await create_user(db_pool, name="root", credits=10**9, role="admin")
    # The fuzzer sends wrong credentials on purpose (ignored_auth), far more often than the
    # failed-authentication throttle lets an address: off here, it has its own test.
    settings = settings_for(servers, log_level="WARNING", auth_failures_per_min=0)
    async with serving(settings) as api:
        process = await asyncio.create_subprocess_exec(
            str(SCHEMATHESIS),
            "run",
            f"{api.url}/openapi.json",
            "--checks",
            "not_a_server_error,ignored_auth",
            "--header",
            f"Authorization: Bearer {root.api_key}",
            "--phases",
            "examples,coverage,fuzzing",
            "--max-examples",
            "30",
            "--max-time",
            str(TIME_BUDGET_S),
            "--workers",
            "2",
            "--request-timeout",
            "10",
            "--seed",
            "1",
            "--generation-database",
            "none",
            "--no-color",
            "--report-dir",
            str(tmp_path),
            cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await asyncio.wait_for(process.communicate(), TIME_BUDGET_S + 45)
    report = output.decode()
    assert process.returncode == 0, report
    selected = re.search(r"Operations:\s+(\d+) selected / (\d+) total", report)
    assert selected is not None, report
    assert int(selected[1]) == int(selected[2]) >= 20, report  # every operation, offers too
    assert "Server error" not in report
