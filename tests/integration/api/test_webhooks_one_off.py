"""A request names a one-off webhook URL at submit with ``Relai-Webhook-Url``, on every door
(``/svc``, ``/ask``, ``/deal``, and ``/v1`` through the ``openai`` SDK's ``extra_headers``): held
to the rules of endpoints' URLs, signed with the user's one-off secret (422 naming
``POST /webhooks/secret`` until there is one), written with the request; a duplicate submission
finds the request and leaves its URL as it was."""

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import openai
import pytest

from libs.accounts import NewUser
from tests.deals_support import load_deals_catalog
from tests.integration.api.conftest import Api, auth, serving, settings_for
from tests.support import ServerUrls, load_demo_catalog

ONE_OFF = "https://93.184.216.36/one-off"
HEADER = "Relai-Webhook-Url"


async def _with_secret(api: Api, user: NewUser) -> None:
    r = await api.client.post("/webhooks/secret", headers=auth(user))
    assert r.status_code == 201, r.text


async def _webhook_url(pool: "asyncpg.Pool[Any]", request_id: str) -> str | None:
    url: str | None = await pool.fetchval(
        "SELECT webhook_url FROM requests WHERE id = $1::uuid", request_id
    )
    return url


async def _requests(pool: "asyncpg.Pool[Any]") -> int:
    count: int = await pool.fetchval("SELECT count(*) FROM requests")
    return count


async def test_svc_ask_and_deal_keep_the_url_with_the_request(
    api: Api, alice: NewUser, db_pool: "asyncpg.Pool[Any]"
) -> None:
    await load_deals_catalog(db_pool)
    await _with_secret(api, alice)
    headers = {**auth(alice), HEADER: ONE_OFF}
    svc = await api.client.post("/svc/demo/echo", json={"text": "a"}, headers=headers)
    assert svc.status_code == 202, svc.text
    ask = await api.client.post("/ask", json={"prompt": "b"}, headers=headers)
    assert ask.status_code == 202, ask.text
    deal = await api.client.post(
        "/deal/bundle", json={"inputs": {"text": "t", "name": "n", "age": "1"}}, headers=headers
    )
    assert deal.status_code == 202, deal.text
    for answer in (svc, ask, deal):
        assert await _webhook_url(db_pool, answer.json()["id"]) == ONE_OFF
    plain = await api.client.post("/svc/demo/echo", json={"text": "c"}, headers=auth(alice))
    assert await _webhook_url(db_pool, plain.json()["id"]) is None

    # A duplicate finds the request, and changes nothing of it: not its URL either.
    for other in ({**auth(alice), HEADER: ONE_OFF + "/other"}, auth(alice)):
        again = await api.client.post("/svc/demo/echo", json={"text": "a"}, headers=other)
        assert again.status_code == 202
        assert (again.json()["id"], again.json()["duplicate"]) == (svc.json()["id"], True)
        assert await _webhook_url(db_pool, svc.json()["id"]) == ONE_OFF
    again = await api.client.post(
        "/svc/demo/echo", json={"text": "c"}, headers={**auth(alice), HEADER: ONE_OFF}
    )
    assert again.json()["duplicate"] is True
    assert await _webhook_url(db_pool, plain.json()["id"]) is None


async def test_the_openai_door_takes_it_through_the_sdks_extra_headers(
    api: Api, alice: NewUser, db_pool: "asyncpg.Pool[Any]"
) -> None:
    await _with_secret(api, alice)
    async with api.openai(alice.api_key) as sdk:
        response = await sdk.responses.create(
            model="demo/ask", input="hello", background=True, extra_headers={HEADER: ONE_OFF}
        )
        assert await _webhook_url(db_pool, response.id.removeprefix("resp_")) == ONE_OFF

        with pytest.raises(openai.UnprocessableEntityError) as refused:
            await sdk.responses.create(
                model="demo/ask",
                input="again",
                background=True,
                extra_headers={HEADER: "http://169.254.169.254/latest"},
            )
    body = refused.value.body
    assert isinstance(body, dict)
    assert body["type"] == "invalid_request_error"
    assert "169.254.169.254 is a cloud metadata address" in body["message"]
    assert await _requests(db_pool) == 1


async def test_without_a_one_off_secret_the_header_is_a_422_naming_how_to_get_one(
    api: Api, alice: NewUser, db_pool: "asyncpg.Pool[Any]"
) -> None:
    r = await api.client.post(
        "/svc/demo/echo", json={"text": "a"}, headers={**auth(alice), HEADER: ONE_OFF}
    )
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "invalid_inputs"
    assert "POST /webhooks/secret" in r.json()["detail"]
    assert r.json()["fields"] == ["header Relai-Webhook-Url"]
    async with api.openai(alice.api_key) as sdk:
        with pytest.raises(openai.UnprocessableEntityError) as refused:
            await sdk.chat.completions.create(
                model="demo/ask",
                messages=[{"role": "user", "content": "hi"}],
                extra_headers={HEADER: ONE_OFF},
            )
    assert "POST /webhooks/secret" in refused.value.message
    assert await _requests(db_pool) == 0
    balance = await db_pool.fetchval("SELECT balance FROM users WHERE id = $1", alice.id)
    assert balance == 100  # nothing reserved


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1:9000/hook", "127.0.0.1 is a loopback address"),
        ("http://169.254.169.254/latest/meta-data", "cloud metadata address"),
        ("http://[::1]/hook", "loopback"),
        ("ftp://93.184.216.36/hook", "only http and https"),
        ("https://93.184.216.36/" + "x" * 2048, "longer than 2048 characters"),
        ("not a url", "only http and https"),
    ],
)
async def test_a_url_endpoints_could_not_have_is_a_422_naming_the_reason(
    api: Api, alice: NewUser, db_pool: "asyncpg.Pool[Any]", url: str, reason: str
) -> None:
    await _with_secret(api, alice)
    r = await api.client.post(
        "/svc/demo/echo", json={"text": "a"}, headers={**auth(alice), HEADER: url}
    )
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "invalid_inputs"
    assert r.json()["detail"].startswith("header Relai-Webhook-Url: ")
    assert reason in r.json()["detail"]
    assert await _requests(db_pool) == 0


@pytest.fixture
async def allowing_loopback(
    servers: ServerUrls, db_pool: "asyncpg.Pool[Any]"
) -> AsyncIterator[Api]:
    await load_demo_catalog(db_pool)
    async with serving(settings_for(servers, ssrf_allow=["127.0.0.0/8"])) as running:
        yield running


async def test_an_address_the_operator_allows_is_accepted(
    allowing_loopback: Api, alice: NewUser, db_pool: "asyncpg.Pool[Any]"
) -> None:
    api = allowing_loopback
    await _with_secret(api, alice)
    r = await api.client.post(
        "/svc/demo/echo",
        json={"text": "a"},
        headers={**auth(alice), HEADER: "http://127.0.0.1:9000/hook"},
    )
    assert r.status_code == 202, r.text
    assert await _webhook_url(db_pool, r.json()["id"]) == "http://127.0.0.1:9000/hook"
