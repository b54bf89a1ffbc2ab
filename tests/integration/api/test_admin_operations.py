"""The admin API's operations: central configs (versions, a masked version, the diff, activate,
roll back; secrets never shown), dead letters (inspected, never run again) and stuck requests
(listed, re-driven through ``libs.outcomes.redrive`` unless live)."""

import asyncio
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest
from redis.asyncio import Redis

from libs.contracts import DEAD_LETTERS_STREAM, TASKS_STREAM
from libs.contracts.streams import MESSAGE_FIELD
from tests.integration.api.conftest import Api, auth, serving, settings_for
from tests.integration.config.conftest import follow_config
from tests.support import ServerUrls, create_user

SECRET = "sk-very-secret-value"


async def test_configs_are_listed_diffed_activated_and_rolled_back_without_secrets(
    servers: ServerUrls,
    db_pool: "asyncpg.Pool[Any]",
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    followed = await follow_config(
        "api", servers=servers, pool=db_pool, tmp_path=tmp_path, monkeypatch=monkeypatch
    )
    root = await create_user(db_pool, name="root", credits=0, role="admin")
    user = await create_user(db_pool, name="ada", credits=0)
    worker = "integrations:\n  openai:\n    base_url: https://api.openai.com/v1\n"
    await followed.upload("worker", worker + f"    ~api_key: {SECRET}\n")
    await followed.upload("worker", worker + "    ~api_key: sk-another-one\n")
    await followed.upload(
        "worker", worker.replace("openai.com", "example.com") + "    ~api_key: x\n"
    )
    await followed.store.activate("worker", "1", author="ops")

    settings = settings_for(servers, config_file=followed.bootstrap)
    async with serving(settings) as api:
        admin = auth(root)
        r = await api.client.get("/admin/configs", headers=admin)
        assert r.status_code == 200, r.text
        [worker_config] = r.json()
        assert (worker_config["config_id"], worker_config["active_version"]) == ("worker", "1")
        versions = (await api.client.get("/admin/configs/worker/versions", headers=admin)).json()
        assert [(v["version"], v["active"]) for v in versions] == [
            ("1", True),
            ("2", False),
            ("3", False),
        ]
        shown = await api.client.get("/admin/configs/worker/versions/1", headers=admin)
        assert "********" in shown.json()["document"]
        assert SECRET not in shown.text
        diff = (
            await api.client.get(
                "/admin/configs/worker/diff", params={"old": "1", "new": "2"}, headers=admin
            )
        ).json()["diff"]
        assert "(changed)" in diff
        assert SECRET not in diff

        r = await api.client.post(
            "/admin/configs/worker/activate", json={"version": "3"}, headers=admin
        )
        assert r.json() == {"config_id": "worker", "active_version": "3"}
        r = await api.client.post("/admin/configs/worker/rollback", headers=admin)
        assert r.json() == {"config_id": "worker", "active_version": "1"}
        assert (await followed.store.get("worker")).version == "1"
        author = await db_pool.fetchval(
            "SELECT author FROM config_activations ORDER BY id DESC LIMIT 1"
        )
        assert "root" in author

        missing = await api.client.post(
            "/admin/configs/worker/activate", json={"version": "9"}, headers=admin
        )
        assert (missing.status_code, missing.json()["code"]) == (404, "not_found")
        r = await api.client.post("/admin/configs/nope/rollback", headers=admin)
        assert r.status_code == 404
        assert (await api.client.get("/admin/configs", headers=auth(user))).status_code == 403


async def test_without_a_config_file_configs_are_404(
    api: Api, db_pool: "asyncpg.Pool[Any]"
) -> None:
    root = await create_user(db_pool, name="root", credits=0, role="admin")
    r = await api.client.get("/admin/configs", headers=auth(root))
    assert (r.status_code, r.json()["code"]) == (404, "not_found")
    assert "RELAI_CONFIG_FILE" in r.json()["detail"]


async def test_dead_letters_are_shown_with_their_request_never_its_prompt(
    api: Api, db_pool: "asyncpg.Pool[Any]", redis_client: Redis
) -> None:
    root = await create_user(db_pool, name="root", credits=0, role="admin")
    ada = await create_user(db_pool, name="ada", credits=10)
    r = await api.client.post("/svc/demo/echo", json={"text": "poison"}, headers=auth(ada))
    request_id = r.json()["id"]
    task = {
        "v": 1,
        "request_id": request_id,
        "attempt": 3,
        "handler": "echo.text",
        "prompt": "the user's words",
        "params": {"api_key": "sk-leak", "delay_ms": 5},
    }
    for n in range(3):
        await redis_client.xadd(
            DEAD_LETTERS_STREAM,
            {
                MESSAGE_FIELD: orjson.dumps(task),
                b"deliveries": b"5",
                b"crashes": b"3",
                b"reason": f"crashed {n}".encode(),
            },
        )
    await redis_client.xadd(DEAD_LETTERS_STREAM, {b"reason": b"unreadable"})

    first = await api.client.get("/admin/dead-letters", params={"limit": 3}, headers=auth(root))
    assert first.status_code == 200, first.text
    page = first.json()
    assert page["length"] == 4
    assert [i["reason"] for i in page["items"]] == ["unreadable", "crashed 2", "crashed 1"]
    letter = page["items"][1]
    assert (letter["request_id"], letter["user"], letter["handler"]) == (
        request_id,
        "ada",
        "echo.text",
    )
    assert (letter["attempt"], letter["deliveries"], letter["crashes"]) == (3, 5, 3)
    assert letter["prompt_chars"] == len("the user's words")
    assert "the user's words" not in first.text
    assert "sk-leak" not in first.text
    rest = await api.client.get(
        "/admin/dead-letters",
        params={"before": page["items"][-1]["entry_id"]},
        headers=auth(root),
    )
    assert [i["reason"] for i in rest.json()["items"]] == ["crashed 0"]
    assert (await api.client.get("/admin/dead-letters", headers=auth(ada))).status_code == 403


async def test_a_stuck_request_is_redriven_once_and_live_ones_are_left_alone(
    api: Api, db_pool: "asyncpg.Pool[Any]", redis_client: Redis
) -> None:
    root = await create_user(db_pool, name="root", credits=0, role="admin")
    ada = await create_user(db_pool, name="ada", credits=10)
    admin = auth(root)
    r = await api.client.post("/svc/demo/echo", json={"text": "lost"}, headers=auth(ada))
    request_id = uuid.UUID(r.json()["id"])
    # The relay publishes its task (no worker runs here), then Redis loses it.
    for _ in range(200):
        if await redis_client.xlen(TASKS_STREAM):
            break
        await asyncio.sleep(0.02)
    await redis_client.delete(TASKS_STREAM)
    await db_pool.execute("UPDATE requests SET updated_at = now() - interval '1 hour'")

    stuck = await api.client.get("/admin/requests/stuck", headers=admin)
    assert stuck.status_code == 200, stuck.text
    [row] = stuck.json()
    assert (row["id"], row["user"], row["target"], row["attempt"]) == (
        str(request_id),
        "ada",
        "demo/echo",
        1,
    )
    assert (row["queued"], row["in_flight"]) == (False, False)
    assert row["idle_s"] > 3000

    done = await api.client.post(f"/admin/requests/{request_id}/redrive", headers=admin)
    assert done.status_code == 200, done.text
    assert done.json() == {"id": str(request_id), "attempt": 2, "steps": []}
    # Queued (or already published by the relay): a second re-drive is refused either way.
    again = await api.client.post(f"/admin/requests/{request_id}/redrive", headers=admin)
    assert (again.status_code, again.json()["code"]) == (409, "conflict")
    missing = await api.client.post(f"/admin/requests/{uuid.uuid4()}/redrive", headers=admin)
    assert missing.status_code == 404
    denied = await api.client.post(f"/admin/requests/{request_id}/redrive", headers=auth(ada))
    assert denied.status_code == 403


async def test_dead_letters_before_any_id_are_a_page_like_any_other(
    api: Api, db_pool: "asyncpg.Pool[Any]", redis_client: Redis
) -> None:
    root = await create_user(db_pool, name="root", credits=0, role="admin")
    await redis_client.xadd(DEAD_LETTERS_STREAM, {b"reason": b"one"})
    for before, reasons in (
        ("0-0", []),
        ("0-1", []),
        ("99999999999999999999-0", ["one"]),
        ("1-99999999999999999999", []),
    ):
        r = await api.client.get(
            "/admin/dead-letters", params={"before": before}, headers=auth(root)
        )
        assert r.status_code == 200, (before, r.text)
        assert [i["reason"] for i in r.json()["items"]] == reasons
