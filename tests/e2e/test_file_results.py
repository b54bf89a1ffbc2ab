"""A worker killed (-9) right after it stored a file result, before the result was recorded:
nothing is lost (another worker runs the job again, the request ends once and is charged once,
with the file that worker stored), and what the dead one stored is an orphan that recon's
collection removes, on a directory and on S3 alike.

The handler is a test plugin (installed as a package, as tests plug handlers into workers). Its
first run of a request stores its bytes through ``libs.blobs``, as the worker stores a file
output, and kills its own process before anything is reported; a later run returns its file as a
``FileOutput``, which the worker stores and reports."""

import asyncio
import os
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from libs.blobs.store import open_store, sha256_of
from libs.catalog import CatalogSpec, apply_catalog
from libs.contracts.files import result_file_id
from libs.files.collect import collect_orphans, collect_unreferenced
from tests.e2e.conftest import Stack
from tests.fakes.plugins import install_plugin

pytestmark = pytest.mark.e2e

PRICE = 5

DRAW = """
    import os
    import signal
    from pathlib import Path

    from libs.blobs.store import open_store
    from services.worker.job import FileOutput


    def image(request_id, run):
        return b"\\x89PNG " + f"{request_id} {run}".encode()


    class Draw:
        async def execute(self, job, ctx):
            marker = Path(os.environ["RELAI_TEST_MARKERS"]) / str(job.request_id)
            if not marker.exists():  # stored, not yet reported: die as a worker killed -9 does
                await open_store(os.environ["RELAI_BLOB_URL"]).put(image(job.request_id, "first"))
                marker.write_text(str(os.getpid()))
                os.kill(os.getpid(), signal.SIGKILL)
            return [FileOutput(image(job.request_id, "again"), "application/octet-stream")]
"""

CATALOG = CatalogSpec.model_validate(
    {
        "handlers": [{"id": "files.draw"}],
        "offers": [
            {
                "service": "files",
                "action": "draw",
                "price": PRICE,
                "prompt_template": "{text}",
                "handler": "files.draw",
            }
        ],
    }
)


def image(request_id: uuid.UUID, run: str) -> bytes:
    return b"\x89PNG " + f"{request_id} {run}".encode()


@pytest.fixture
def markers(tmp_path: Path) -> Path:
    path = tmp_path / "markers"
    path.mkdir()
    return path


@pytest.fixture
def stack_env(
    stack_env: dict[str, str], blob_url: str, markers: Path, tmp_path: Path
) -> dict[str, str]:
    """The stack's environment with the plugin, on the blob store of this run (a directory or
    an S3 bucket, its ``AWS_*`` settings from the test's environment)."""
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    install_plugin(plugins, DRAW, {"files.draw": "{module}:Draw"})
    aws = {name: value for name, value in os.environ.items() if name.startswith("AWS_")}
    path = os.pathsep.join(p for p in (str(plugins), stack_env.get("PYTHONPATH")) if p)
    return {
        **stack_env,
        **aws,
        "RELAI_BLOB_URL": blob_url,
        "RELAI_TEST_MARKERS": str(markers),
        "PYTHONPATH": path,
    }


async def _final(client: httpx.AsyncClient, request_id: str) -> dict[str, Any]:
    async with asyncio.timeout(60):
        while True:
            body: dict[str, Any] = (await client.get(f"/svc/request/{request_id}")).json()
            if body["status"] in ("succeeded", "failed"):
                return body
            await asyncio.sleep(0.1)


async def test_a_worker_killed_after_storing_a_file_result_loses_nothing_and_leaves_no_orphan(
    stack: Stack,
    client: httpx.AsyncClient,
    db_pool: "asyncpg.Pool[Any]",
    blob_url: str,
    markers: Path,
) -> None:
    async with db_pool.acquire() as conn:
        await apply_catalog(conn, CATALOG, prune=False)

    answer = await client.post("/svc/files/draw", json={"text": "a cat"})
    assert answer.status_code == 202, answer.text
    request_id = uuid.UUID(answer.json()["id"])
    final = await _final(client, str(request_id))

    killed = int((markers / str(request_id)).read_text())
    assert killed in stack.supervisor.pids.values()  # a worker of the stack ran it first
    again, first = image(request_id, "again"), image(request_id, "first")
    assert final["status"] == "succeeded"
    (ref,) = final["results"]
    file_id = result_file_id(request_id, None, 0)
    assert (ref["type"], ref["id"], ref["sha256"]) == ("file", file_id, sha256_of(again))
    ledger = await db_pool.fetch(
        "SELECT kind, amount FROM credit_ledger WHERE request_id = $1 ORDER BY id", request_id
    )
    assert [(r["kind"], r["amount"]) for r in ledger] == [("reserve", PRICE), ("settle", PRICE)]
    balance = await db_pool.fetchval("SELECT balance FROM users WHERE id = $1", stack.user.id)
    assert balance == stack.credits - PRICE
    row = await db_pool.fetchrow("SELECT sha256, purpose, name FROM files WHERE id = $1", file_id)
    assert row is not None
    assert (row["sha256"], row["purpose"], row["name"]) == (sha256_of(again), "result", "0")

    store = open_store(blob_url)
    stored = {meta.sha256 async for meta in store.list()}
    assert stored == {sha256_of(first), sha256_of(again)}  # the dead worker's bytes: an orphan

    # Recon's collection, run at once rather than after its thresholds.
    assert (await collect_unreferenced(db_pool, store, grace_s=0, batch=100)).blobs == 0
    swept = await collect_orphans(db_pool, store, older_than_s=0, limit=100)

    assert (swept.blobs, swept.bytes) == (1, len(first))
    assert {meta.sha256 async for meta in store.list()} == {sha256_of(again)}
    assert await store.get(sha256_of(again)) == again
    blobs = await db_pool.fetch("SELECT sha256 FROM blobs")
    assert [b["sha256"] for b in blobs] == [sha256_of(again)]
