"""Rate limits and the unfinished cap come from the central config ``api`` (its ``limits``):
activated, rolled back and switched off without a restart; what it leaves unset falls back to
the process settings."""

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from cryptography.fernet import Fernet, MultiFernet

from libs import config
from libs.config import ConfigError
from libs.config.postgres import PostgresConfigStore
from tests.integration.api.conftest import auth, serving, settings_for
from tests.integration.config.conftest import follow_config
from tests.support import ServerUrls, create_user, load_demo_catalog

STRICT = "limits:\n  rate_per_s: 0.01\n  burst: 3\n  max_unfinished_per_user: 1\n"
OPEN = "limits:\n  rate_per_s: 0\n"


async def _until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + 5
    while not await check():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.05)


async def test_limits_follow_activation_and_rollback(
    servers: ServerUrls,
    db_pool: "asyncpg.Pool[Any]",
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    followed = await follow_config(
        "api", servers=servers, pool=db_pool, tmp_path=tmp_path, monkeypatch=monkeypatch
    )
    await load_demo_catalog(db_pool)
    carol = await create_user(db_pool, name="carol", credits=100)
    bob = await create_user(db_pool, name="bob", credits=100)
    store = followed.store
    for document in (STRICT, OPEN):
        await followed.upload("api", document)

    settings = settings_for(servers, config_file=followed.bootstrap, config_poll_s=30.0)
    async with serving(settings) as api:

        async def me() -> int:
            return (await api.client.get("/me", headers=auth(carol))).status_code

        async def submit(text: str) -> int:
            r = await api.client.post("/svc/demo/echo", json={"text": text}, headers=auth(bob))
            return r.status_code

        assert [await me() for _ in range(10)] == [200] * 10  # the settings: no limit

        await store.activate("api", "1", author="ops")
        await _until(lambda: _refused(me), "the API never applied the config's rate limit")
        assert await submit("one") == 202
        assert await submit("two") == 429  # bob's own allowance; the cap of 1 refuses him

        await store.activate("api", "2", author="ops")
        await _until(lambda: _allowed(me), "the API never lifted the rate limit")
        assert [await me() for _ in range(10)] == [200] * 10
        assert await submit("two") == 202  # the cap falls back to the settings: none

        assert await store.rollback("api", author="ops") == "1"
        await _until(lambda: _refused(me), "the rollback never restored the rate limit")

    assert await db_pool.fetchval("SELECT count(*) FROM requests WHERE user_id = $1", bob.id) == 2


async def _refused(me: Callable[[], Awaitable[int]]) -> bool:
    return await me() == 429


async def _allowed(me: Callable[[], Awaitable[int]]) -> bool:
    return await me() == 200


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        ("limits:\n  rate_per_s: -1\n", "limits.rate_per_s: Input should be greater than or equal"),
        ("limits:\n  burst: 0\n", "limits.burst: Input should be greater than or equal to 1"),
        ("limits:\n  per_hour: 5\n", "limits.per_hour: Extra inputs are not permitted"),
    ],
)
async def test_invalid_limits_are_refused_at_upload(
    servers: ServerUrls, db_pool: "asyncpg.Pool[Any]", document: str, problem: str
) -> None:
    store = PostgresConfigStore(db_pool, database_url=servers.database_url)
    fernet = MultiFernet([Fernet(Fernet.generate_key())])
    with pytest.raises(ConfigError) as refused:
        await config.upload(store, "api", document, fernet=fernet, environ={}, author="ops")
    assert problem in str(refused.value)
    assert await store.summaries() == []
