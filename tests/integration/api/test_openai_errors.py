"""The ``/v1`` wire contract the ``openai`` SDK relies on, with the SDK itself against a real API
server (Postgres and Redis real, no worker needed): OpenAI's error shape and status codes, the
SDK's typed exceptions, ``x-request-id``, ``retry-after``/``retry-after-ms``, and a refused
call leaving nothing written."""

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import openai
import pytest

from tests.integration.api.conftest import Api, serving, settings_for
from tests.support import ServerUrls, create_user, load_demo_catalog


@pytest.fixture
async def limited(servers: ServerUrls, db_pool: "asyncpg.Pool[Any]") -> AsyncIterator[Api]:
    await load_demo_catalog(db_pool)
    settings = settings_for(servers, rate_limit_per_s=0.01, rate_limit_burst=2)
    async with serving(settings) as running:
        yield running


async def test_a_spent_rate_limit_is_a_rate_limit_error_with_both_retry_headers(
    limited: Api, db_pool: "asyncpg.Pool[Any]"
) -> None:
    user = await create_user(db_pool, name="hasty", credits=10)
    async with limited.openai(user.api_key) as sdk:
        await sdk.models.list()
        await sdk.models.list()
        with pytest.raises(openai.RateLimitError) as limited_error:
            await sdk.models.list()
    headers = limited_error.value.response.headers
    assert int(headers["retry-after-ms"]) == 1000 * int(headers["retry-after"])
    assert headers["x-request-id"].startswith("req_")
    body = limited_error.value.body
    assert isinstance(body, dict)
    assert (body["type"], body["code"]) == ("rate_limit_error", "too_many_requests")


async def test_a_short_balance_is_a_402_naming_the_price_and_writes_nothing(
    api: Api, db_pool: "asyncpg.Pool[Any]"
) -> None:
    user = await create_user(db_pool, name="broke", credits=0)
    async with api.openai(user.api_key) as sdk:
        with pytest.raises(openai.APIStatusError) as short:
            await sdk.chat.completions.create(
                model="demo/ask", messages=[{"role": "user", "content": "hello"}]
            )
    assert short.value.status_code == 402
    assert "costs 1 credits" in short.value.message
    assert await db_pool.fetchval("SELECT count(*) FROM requests WHERE user_id = $1", user.id) == 0


async def test_errors_have_openai_s_shape_under_v1_and_ours_elsewhere(
    api: Api, db_pool: "asyncpg.Pool[Any]"
) -> None:
    user = await create_user(db_pool, name="shape", credits=10)
    headers = {"Authorization": f"Bearer {user.api_key}"}
    r = await api.client.post(
        "/v1/chat/completions", json={"model": "demo/ask", "messages": "hi"}, headers=headers
    )
    assert r.status_code == 400
    error = r.json()["error"]
    assert (error["type"], error["param"]) == ("invalid_request_error", "messages")
    assert set(error) >= {"message", "type", "param", "code"}
    r = await api.client.get("/v1/nothing-here", headers=headers)
    assert r.status_code == 404
    assert r.json()["error"]["type"] == "invalid_request_error"
    r = await api.client.post(
        "/v1/chat/completions",
        json={"model": "demo/greet", "messages": [{"role": "user", "content": "x"}]},
        headers=headers,
    )
    assert r.status_code == 404  # two template variables: not a chat model
    assert r.json()["error"]["code"] == "model_not_found"
    r = await api.client.post("/svc/demo/nothing", json={}, headers=headers)
    assert set(r.json()) == {"detail", "code"}
    assert r.headers["x-request-id"].startswith("req_")


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "assistant", "content": "last"}]}, "messages"),
        ({"messages": [{"role": "user", "content": "x"}], "n": 2}, "n"),
        ({"messages": [{"role": "user", "content": "x"}], "temperature": 3}, "temperature"),
        ({"messages": [{"role": "user", "content": "x"}], "logprobs": True}, "logprobs"),
        ({"messages": [{"role": "user", "content": "x"}], "unknown": 1}, "unknown"),
    ],
)
async def test_a_body_the_door_refuses_is_a_bad_request_naming_the_field(
    api: Api, db_pool: "asyncpg.Pool[Any]", body: dict[str, Any], param: str
) -> None:
    user = await create_user(db_pool, name=f"refused-{param}", credits=10)
    async with api.openai(user.api_key) as sdk:
        extra = dict(body)
        messages = extra.pop("messages")
        with pytest.raises(openai.BadRequestError) as refused:
            await sdk.chat.completions.create(model="demo/ask", messages=messages, extra_body=extra)
    assert refused.value.param == param
    assert await db_pool.fetchval("SELECT count(*) FROM requests WHERE user_id = $1", user.id) == 0


async def test_another_user_s_response_is_not_found(api: Api, db_pool: "asyncpg.Pool[Any]") -> None:
    alice = await create_user(db_pool, name="alice-v1", credits=10)
    bob = await create_user(db_pool, name="bob-v1", credits=10)
    async with api.openai(alice.api_key) as sdk:
        created = await sdk.responses.create(model="demo/ask", input="mine", background=True)
    async with api.openai(bob.api_key) as sdk:
        with pytest.raises(openai.NotFoundError):
            await sdk.responses.retrieve(created.id)
        with pytest.raises(openai.NotFoundError):
            await sdk.responses.cancel(created.id)
        with pytest.raises(openai.NotFoundError):
            await sdk.responses.retrieve("resp_not-an-id")
    async with httpx.AsyncClient(base_url=api.url) as client:
        r = await client.get(
            f"/v1/responses/{created.id}", headers={"Authorization": f"Bearer {bob.api_key}"}
        )
    assert r.status_code == 404


async def test_a_call_that_outlives_its_wait_is_a_504_and_its_request_goes_on(
    servers: ServerUrls, db_pool: "asyncpg.Pool[Any]"
) -> None:
    """No worker runs here: the request stays pending past ``RELAI_OPENAI_WAIT_S``."""
    await load_demo_catalog(db_pool)
    user = await create_user(db_pool, name="patient", credits=10)
    async with serving(settings_for(servers, openai_wait_s=0.3)) as api:
        async with api.openai(user.api_key) as sdk:
            with pytest.raises(openai.InternalServerError) as waited:
                await sdk.chat.completions.create(
                    model="demo/ask", messages=[{"role": "user", "content": "later"}]
                )
            assert waited.value.status_code == 504
            stream = await sdk.chat.completions.create(
                model="demo/ask", messages=[{"role": "user", "content": "later"}], stream=True
            )
            with pytest.raises(openai.APIError, match="still running"):
                await _drain(stream)
    rows = await db_pool.fetch("SELECT status, price FROM requests WHERE user_id = $1", user.id)
    assert [(r["status"], r["price"]) for r in rows] == [("pending", 1)]  # one request, waiting
    assert "/svc/request/" in waited.value.message


async def _drain(stream: Any) -> None:
    async for _ in stream:
        pass
