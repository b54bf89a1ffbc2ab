"""The API follows the central config ``api``: its ``ask_offer`` is the offer behind ``/ask``,
switched on activation without a restart; without the config, ``RELAI_ASK_OFFER`` holds."""

import asyncio
import time
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.integration.api.conftest import auth, serving, settings_for
from tests.integration.config.conftest import follow_config
from tests.support import ServerUrls, create_user, load_demo_catalog


async def test_ask_follows_the_active_api_config(
    servers: ServerUrls,
    db_pool: "asyncpg.Pool[Any]",
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    followed = await follow_config(
        "api", servers=servers, pool=db_pool, tmp_path=tmp_path, monkeypatch=monkeypatch
    )
    await load_demo_catalog(db_pool)
    user = await create_user(db_pool, name="ada", credits=100)
    store = followed.store
    await followed.upload("api", "ask_offer: demo/echo\n")
    await followed.upload("api", "ask_offer: demo/nope\n")

    settings = settings_for(servers, config_file=followed.bootstrap, config_poll_s=30.0)
    async with serving(settings) as api:

        async def ask(prompt: str) -> tuple[int, dict[str, Any]]:
            answer = await api.client.post("/ask", json={"prompt": prompt}, headers=auth(user))
            if answer.status_code != 202:
                return answer.status_code, answer.json()
            view = await api.client.get(f"/svc/request/{answer.json()['id']}", headers=auth(user))
            return 202, view.json()

        status, view = await ask("one")
        assert (status, view["inputs"], view["price"]) == (202, {"prompt": "one"}, 1)

        await store.activate("api", "1", author="t")
        deadline = time.monotonic() + 5
        while (await ask("two"))[1].get("inputs") != {"text": "two"}:
            assert time.monotonic() < deadline, "the API never switched its /ask offer"
            await asyncio.sleep(0.05)
        status, view = await ask("three")
        assert (status, view["inputs"], view["price"]) == (202, {"text": "three"}, 2)

        await store.activate("api", "2", author="t")
        deadline = time.monotonic() + 5
        while (answer := await ask("four"))[0] != 404:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        assert answer[1]["detail"] == "the default offer demo/nope is not enabled"
