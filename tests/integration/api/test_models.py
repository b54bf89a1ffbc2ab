"""Models over HTTP: an offer of a model shows the model version it is routed to, a submission
puts that version's route in its task and keeps the version on the request; one that cannot fit
the model's context is refused before anything is reserved, naming both numbers; switching the
default version applies to the requests submitted after it; the deployment that served a request
is kept and counted in usage."""

import asyncio
import re
import time
import uuid
from typing import Any, cast

import asyncpg
import openai
import pytest
from pydantic import ValidationError
from redis.asyncio import Redis

from libs.accounts import NewUser
from libs.catalog import CatalogSpec, apply_catalog, export_catalog
from libs.contracts import TASKS_STREAM, TaskMessage
from libs.contracts.streams import MESSAGE_FIELD
from libs.outcomes import Ended, Started, record_outcomes
from libs.outcomes.redrive import lock_request
from libs.streams import Entry
from services.recon.usage.service import UsageLoop
from tests.integration.api.conftest import Api, auth, serving, settings_for
from tests.integration.api.money_helpers import ledger_of, wallet_of
from tests.support import ServerUrls, create_user

LLAMA = {
    "name": "llama3",
    "handler": "openai.chat",
    "provider_model": "meta-llama/Meta-Llama-3-8B-Instruct",
    "context_window": 300,
    "max_output_tokens": 100,
    "tokenizer": "cl100k_base",
    "description": "Llama 3, 8B",
    "deployments": [
        {"integration": "vllm_a", "weight": 3, "max_concurrency": 8},
        {"integration": "vllm_b", "model": "llama3-8b"},
    ],
    "max_attempts": 3,
    "cooldown_s": 5,
}


def catalog(default: str = "v1") -> CatalogSpec:
    return CatalogSpec.model_validate(
        {
            "handlers": [{"id": "openai.chat"}],
            "models": [
                {**LLAMA, "version": "v1", "default": default == "v1"},
                {**LLAMA, "version": "v2", "default": default == "v2", "context_window": 400},
                {
                    "name": "guess",
                    "version": "1",
                    "handler": "openai.chat",
                    "context_window": 50,
                    "max_output_tokens": 10,
                    "default": True,
                },
            ],
            "offers": [
                {
                    "service": "llm",
                    "action": "chat",
                    "price": 2,
                    "prompt_template": "{text}",
                    "handler": "openai.chat",
                    "model": "llama3",
                    "aliases": ["llama"],
                },
                {
                    "service": "llm",
                    "action": "pinned",
                    "price": 2,
                    "prompt_template": "{text}",
                    "handler": "openai.chat",
                    "model": "llama3@v1",
                },
                {
                    "service": "llm",
                    "action": "guess",
                    "price": 1,
                    "prompt_template": "{text}",
                    "handler": "openai.chat",
                    "model": "guess",
                },
            ],
        }
    )


@pytest.fixture
async def models(servers: ServerUrls, db_pool: "asyncpg.Pool[Any]") -> Any:
    async with db_pool.acquire() as conn:
        await apply_catalog(conn, catalog(), prune=False)
    # Reloaded often: switching the default version shows within the test.
    async with serving(settings_for(servers, catalog_refresh_s=0.2)) as running:
        yield running


async def _submit(api: Api, user: NewUser, action: str, text: str) -> Any:
    return await api.client.post(f"/svc/llm/{action}", json={"text": text}, headers=auth(user))


async def _task_of(redis: Redis, request_id: str) -> TaskMessage:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        entries = cast(list[Entry], await redis.xrange(TASKS_STREAM))
        for _, fields in entries:
            task = TaskMessage.model_validate_json(fields[MESSAGE_FIELD])
            if str(task.request_id) == request_id:
                return task
        await asyncio.sleep(0.05)
    raise AssertionError(f"no task for {request_id}")


async def test_an_offer_of_a_model_shows_it_and_its_requests_carry_its_route(
    models: Api, alice: NewUser, redis_client: Redis, db_pool: "asyncpg.Pool[Any]"
) -> None:
    offers = {o["action"]: o for o in (await models.client.get("/svc", headers=auth(alice))).json()}
    assert offers["chat"]["model"] == {
        "name": "llama3",
        "version": "v1",
        "description": "Llama 3, 8B",
        "context_window": 300,
        "max_output_tokens": 100,
        "input_modalities": ["text"],
        "output_modalities": ["text"],
    }
    listed = (await models.client.get("/v1/models", headers=auth(alice))).json()["data"]
    by_id = {m["id"]: m for m in listed}
    assert by_id["llama"]["model_info"]["version"] == "v1"
    assert by_id["llm/guess"]["model_info"]["context_window"] == 50

    r = await _submit(models, alice, "chat", "hello")
    assert r.status_code == 202, r.text
    task = await _task_of(redis_client, r.json()["id"])
    assert task.route is not None
    assert (task.route.model, task.route.version) == ("llama3", "v1")
    assert task.route.provider_model == "meta-llama/Meta-Llama-3-8B-Instruct"
    assert [(d.integration, d.weight, d.max_concurrency, d.model) for d in task.route.deployments]
    assert [d.integration for d in task.route.deployments] == ["vllm_a", "vllm_b"]
    assert task.route.deployments[1].model == "llama3-8b"
    assert (task.route.max_attempts, task.route.cooldown_s) == (3, 5)
    view = (await models.client.get(f"/svc/request/{r.json()['id']}", headers=auth(alice))).json()
    assert view["model"] == "llama3@v1"

    # A model without deployments runs where its handler's params say: no route.
    guess = await _submit(models, alice, "guess", "hi")
    assert guess.status_code == 202, guess.text
    assert (await _task_of(redis_client, guess.json()["id"])).route is None

    # A re-drive routes the job to the version its request was routed to.
    async with db_pool.acquire() as conn, conn.transaction():
        locked = await lock_request(conn, uuid.UUID(r.json()["id"]))
        assert locked is not None
        assert locked.run.route == task.route


async def test_a_prompt_that_cannot_fit_the_context_is_refused_with_both_numbers_and_no_charge(
    models: Api, alice: NewUser, db_pool: "asyncpg.Pool[Any]"
) -> None:
    # cl100k_base: "hello" and " hello" are a token each: 250 of them (+ 4 + 3 for the message
    # and the reply) and 100 output tokens exceed 300.
    r = await _submit(models, alice, "chat", " ".join(["hello"] * 250))
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["code"] == "invalid_inputs"
    assert (body["context_window"], body["output_tokens"], body["counted"]) == (300, 100, "counted")
    assert body["input_tokens"] == 250 + 4 + 3
    assert "257" in body["detail"]
    assert "300" in body["detail"]
    assert "llama3@v1" in body["detail"]
    # The estimate (no tokenizer): 105 bytes / 3 = 35 tokens, + 7, + 10 output > 50.
    guess = await _submit(models, alice, "guess", "x" * 105)
    assert guess.status_code == 422, guess.text
    assert (guess.json()["input_tokens"], guess.json()["counted"]) == (42, "estimated")
    assert (await _submit(models, alice, "guess", "x" * 60)).status_code == 202

    # One that fits passes; nothing of the refused ones was written or reserved.
    assert (await _submit(models, alice, "chat", "hello " * 150)).status_code == 202
    assert await db_pool.fetchval("SELECT count(*) FROM requests") == 2
    assert await wallet_of(db_pool, alice) == (100 - 2 - 1, 2 + 1)


async def test_the_openai_door_refuses_too_long_a_conversation_and_more_output_than_the_model(
    models: Api, alice: NewUser, db_pool: "asyncpg.Pool[Any]"
) -> None:
    async with models.openai(alice.api_key) as sdk:
        with pytest.raises(openai.UnprocessableEntityError) as refused:
            await sdk.chat.completions.create(
                model="llama",
                messages=[
                    {"role": "system", "content": "hello " * 100},
                    {"role": "user", "content": "hello " * 100},
                ],
                max_tokens=90,
            )
        with pytest.raises(openai.UnprocessableEntityError) as too_much:
            await sdk.chat.completions.create(
                model="llama", messages=[{"role": "user", "content": "hi"}], max_tokens=101
            )
    assert "context window of model llama3@v1, 300 tokens" in str(refused.value)
    assert "writes at most 100" in str(too_much.value)
    assert await db_pool.fetchval("SELECT count(*) FROM requests") == 0
    assert await wallet_of(db_pool, alice) == (100, 0)


async def test_switching_the_default_version_routes_the_requests_submitted_after_it(
    models: Api, alice: NewUser, redis_client: Redis, db_pool: "asyncpg.Pool[Any]"
) -> None:
    before = (await _submit(models, alice, "chat", "one")).json()["id"]
    async with db_pool.acquire() as conn:
        await apply_catalog(conn, catalog(default="v2"), prune=False)
    deadline = time.monotonic() + 5
    while True:
        offers = (await models.client.get("/svc", headers=auth(alice))).json()
        chat = next(o for o in offers if o["action"] == "chat")
        if chat["model"]["version"] == "v2":
            break
        assert time.monotonic() < deadline, chat
        await asyncio.sleep(0.1)
    pinned = next(o for o in offers if o["action"] == "pinned")
    assert pinned["model"]["version"] == "v1"
    after = (await _submit(models, alice, "chat", "two")).json()["id"]
    assert (await _task_of(redis_client, after)).route.version == "v2"  # type: ignore[union-attr]
    rows = await db_pool.fetch("SELECT id, model, model_version FROM requests ORDER BY created_at")
    assert [(str(r["id"]), r["model"], r["model_version"]) for r in rows] == [
        (before, "llama3", "v1"),
        (after, "llama3", "v2"),
    ]
    # The catalog reads back as written: one default per name, the pin kept.
    async with db_pool.acquire() as conn:
        exported = await export_catalog(conn)
    assert {(m.ref, m.default) for m in exported.models} == {
        ("llama3@v1", False),
        ("llama3@v2", True),
        ("guess@1", True),
    }
    assert {o.action: o.model for o in exported.offers} == {
        "chat": "llama3",
        "pinned": "llama3@v1",
        "guess": "guess",
    }


async def test_the_deployment_that_served_a_request_is_kept_and_counted_in_usage(
    models: Api, alice: NewUser, db_pool: "asyncpg.Pool[Any]"
) -> None:
    request_id = (await _submit(models, alice, "chat", "hello")).json()["id"]
    rid = uuid.UUID(request_id)
    await record_outcomes(db_pool, started=[Started(rid, 1)])
    await record_outcomes(
        db_pool, ended=[Ended(rid, 1, "succeeded", results=["hi"], deployment="vllm_b")]
    )
    assert await ledger_of(db_pool, request_id) == {"reserve": 2, "settle": 2}
    assert await db_pool.fetchval("SELECT deployment FROM requests WHERE id = $1", rid) == (
        "vllm_b"
    )
    await UsageLoop(db_pool, interval_s=60, lag_s=0).run_once()
    row = await db_pool.fetchrow("SELECT integration, model, requests, credits FROM usage_hourly")
    assert row is not None
    assert dict(row) == {
        "integration": "vllm_b",
        "model": "llama3@v1",
        "requests": 1,
        "credits": 2,
    }
    root = await create_user(db_pool, name="root", credits=0, role="admin")
    served = await models.client.get(
        "/admin/usage", params={"model": "llama3@v1"}, headers=auth(root)
    )
    assert served.status_code == 200, served.text
    assert [(u["integration"], u["model"], u["requests"]) for u in served.json()] == [
        ("vllm_b", "llama3@v1", 1)
    ]
    other = await models.client.get("/admin/usage", params={"model": "x@1"}, headers=auth(root))
    assert other.json() == []


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"offers": [{"model": "nope"}]}, "model 'nope' has no enabled default version"),
        ({"offers": [{"model": "llama3@v9"}]}, "llama3@v9 is not an enabled model"),
        ({"offers": [{"handler": "echo.text"}]}, "is called by 'openai.chat'"),
        ({"models": [{"default": True}, {"default": True}]}, "two default versions"),
        ({"models": [{"max_output_tokens": 500}]}, "exceeds the context window"),
        (
            {"models": [{"deployments": [{"integration": "a"}, {"integration": "a"}]}]},
            "listed twice",
        ),
        ({"models": [{"deployments": [{"integration": "a/b"}]}]}, "integration"),
    ],
)
def test_the_catalog_refuses_models_that_do_not_hold_together(
    change: dict[str, list[dict[str, Any]]], problem: str
) -> None:
    data: dict[str, Any] = {
        "handlers": [{"id": "openai.chat"}, {"id": "echo.text"}],
        "models": [{**LLAMA, "version": "v1"}, {**LLAMA, "version": "v2"}],
        "offers": [
            {
                "service": "llm",
                "action": "chat",
                "price": 1,
                "prompt_template": "{text}",
                "handler": "openai.chat",
                "model": "llama3@v1",
            }
        ],
    }
    for key, updates in change.items():
        for entry, update in zip(data[key], updates, strict=False):
            entry.update(update)
    with pytest.raises(ValidationError, match=re.escape(problem)):
        CatalogSpec.model_validate(data)
