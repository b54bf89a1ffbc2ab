"""Schemathesis against the API's own OpenAPI document: generated (and broken) requests to every
operation, once with a user's key and once with an admin's, must never meet a server error, get
in without credentials, or get an answer the document does not declare (status, content type,
headers, body), and invalid requests must be refused; ``schemathesis.toml`` beside this file
lists the checks, and the few operations where a valid request may be refused by a rule no
schema can state.

The run is seeded and bounded by its number of examples, so CI replays the same requests; ``make
fuzz`` runs more examples (``RELAI_FUZZ_EXAMPLES``) with a new seed unless ``RELAI_FUZZ_SEED`` is
set, and with ``RELAI_FUZZ_TIME_S`` fuzzes on until that time is spent.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path
from typing import Any, Literal

import asyncpg
import pytest

from libs.catalog import apply_catalog
from tests.files_support import FILES_CATALOG
from tests.integration.api.conftest import serving, settings_for
from tests.support import ServerUrls, create_user, load_demo_catalog

SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
CONFIG = Path(__file__).with_name("schemathesis.toml")
EXAMPLES = int(os.environ.get("RELAI_FUZZ_EXAMPLES", "25"))
SEED = int(os.environ.get("RELAI_FUZZ_SEED", "1"))
TIME_S = int(os.environ.get("RELAI_FUZZ_TIME_S", "0"))
"""Fuzz on until this is spent (0: stop after ``EXAMPLES`` per operation)."""
RUN_LIMIT_S = 60 + 2 * EXAMPLES + TIME_S
"""Longer than any run should take: a run still going then has hung."""


@pytest.mark.timeout(RUN_LIMIT_S + 30)
@pytest.mark.parametrize("role", ["user", "admin"])
async def test_the_api_keeps_to_its_document(
    servers: ServerUrls, db_pool: asyncpg.Pool[Any], tmp_path: Path, role: Literal["user", "admin"]
) -> None:
    await load_demo_catalog(db_pool)
    async with db_pool.acquire() as conn:  # offers with file inputs too (multipart bodies)
        await apply_catalog(conn, FILES_CATALOG, prune=False)
    caller = await create_user(db_pool, name=role, credits=10**9, role=role)
    # The fuzzer sends wrong credentials on purpose (ignored_auth), far more often than the
    # failed-authentication throttle lets an address: off here, it has its own test.
    settings = settings_for(
        servers,
        log_level="WARNING",
        auth_failures_per_min=0,
        blob_url=str(tmp_path / "blobs"),
    )
    async with serving(settings) as api:
        process = await asyncio.create_subprocess_exec(
            str(SCHEMATHESIS),
            "--config-file",
            str(CONFIG),
            "run",
            f"{api.url}/openapi.json",
            "--header",
            f"Authorization: Bearer {caller.api_key}",
            "--phases",
            "examples,coverage,fuzzing",
            "--max-examples",
            str(EXAMPLES),
            *(["--max-time", str(TIME_S)] if TIME_S else []),
            # One worker: with more, hypothesis parses lambdas' source in threads, which
            # CPython before 3.11.8 can fail at ("AST constructor recursion depth mismatch").
            "--workers",
            "1",
            "--request-timeout",
            "10",
            "--seed",
            str(SEED),
            "--generation-database",
            "none",
            "--no-color",
            "--report-dir",
            str(tmp_path),
            cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await asyncio.wait_for(process.communicate(), RUN_LIMIT_S)
    report = output.decode()
    assert process.returncode == 0, report
    selected = re.search(r"Selected: (\d+)/(\d+)", report)
    assert selected is not None, report
    assert int(selected[1]) == int(selected[2]) >= 30, report  # every operation, offers too
    assert re.search(r"\d+ generated, \d+ passed", report), report
