"""A malicious catalog admin tries to reach the operator's secrets, the process environment and
internal addresses through handler and offer params: each attempt is 422 and writes nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from libs.accounts import NewUser
from tests.integration.api.conftest import Api, auth, serving, settings_for
from tests.integration.cli.conftest import Relai, relai  # noqa: F401
from tests.support import ServerUrls, create_user

LEAK = {
    "url": "https://93.184.215.14/x",
    "api_key_env": "RELAI_CONFIG_KEY",
    "api_key_header": "X-Leak",
    "api_key_prefix": "",
}
"""The reported attack: make the worker send the Fernet key to the attacker's host."""

OFFER = {
    "service": "leak",
    "action": "it",
    "price": 1,
    "prompt_template": "{x}",
    "handler": "http.json",
}


@pytest.fixture
async def admin_api(servers: ServerUrls) -> AsyncIterator[Api]:
    async with serving(settings_for(servers)) as running:
        yield running


@pytest.fixture
async def root(db_pool: asyncpg.Pool[Any]) -> NewUser:
    return await create_user(db_pool, name="root", credits=0, role="admin")


REFUSED_PARAMS = [
    (LEAK, "params.api_key_env: 'api_key_env' names an environment variable"),
    ({"api_key": "sk-live-0123456789"}, "params.api_key: 'api_key' carries a credential"),
    ({"openai_api_key": "sk-live-0123456789"}, "params.openai_api_key"),
    ({"token_env": "DATABASE_URL"}, "names an environment variable"),
    ({"~api_key": "gAAAA"}, "is a secret"),
    ({"headers": {"Authorization": "Bearer sk-live-0123"}}, "params.headers.Authorization"),
    ({"headers": {"x-goog-api-key": "AIza0123"}}, "params.headers.x-goog-api-key"),
    ({"headers": {"X-Custom": "Bearer sk-live-0123456"}}, "looks like a credential"),
    ({"nested": [{"Cookie": "session=1"}]}, "params.nested.0.Cookie"),
    ({"base_url": "http://169.254.169.254/latest"}, "cloud metadata"),
    ({"base_url": "http://[::127.0.0.1]:8080/v1"}, "IPv4-compatible"),
    ({"base_url": "http://[::ffff:0:127.0.0.1]/v1"}, "IPv4-translated"),
    ({"base_url": "http://[::ffff:7f00:1]/v1"}, "loopback"),
    ({"body": {"image": {"url": "http://10.0.0.7/secret.png"}}}, "params.body.image.url"),
    ({"request": {"callback": "http://localhost:5432/"}}, "params.request.callback"),
    ({"request": ["file:///etc/passwd"]}, "only http and https"),
    ({"base_url": 7}, "must be a URL string"),
]


@pytest.mark.parametrize(("params", "fragment"), REFUSED_PARAMS)
@pytest.mark.parametrize("kind", ["handler", "offer"])
async def test_params_that_reach_secrets_or_internal_addresses_are_422_and_write_nothing(
    admin_api: Api,
    root: NewUser,
    db_pool: asyncpg.Pool[Any],
    kind: str,
    params: dict[str, Any],
    fragment: str,
) -> None:
    client, headers = admin_api.client, auth(root)
    await client.put("/admin/handlers", json={"id": "http.json"}, headers=headers)
    if kind == "handler":
        r = await client.put(
            "/admin/handlers", json={"id": "http.json", "params": params}, headers=headers
        )
    else:
        r = await client.put("/admin/offers", json={**OFFER, "params": params}, headers=headers)
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "invalid_inputs"
    assert fragment in r.text
    assert await db_pool.fetchval("SELECT params FROM handlers WHERE id = 'http.json'") == {}
    assert await db_pool.fetchval("SELECT count(*) FROM offers") == 0


async def test_params_that_name_an_integration_and_public_urls_are_accepted(
    admin_api: Api, root: NewUser, db_pool: asyncpg.Pool[Any]
) -> None:
    client, headers = admin_api.client, auth(root)
    params = {
        "integration": "openai",
        "model": "gpt-4o",
        "max_tokens": 256,
        "headers": {"X-Trace": "1"},
        "body": {"image_url": "https://93.184.215.14/cat.png"},
    }
    r = await client.put(
        "/admin/handlers", json={"id": "openai.chat", "params": params}, headers=headers
    )
    assert r.status_code == 201, r.text
    catalog = (await client.get("/admin/catalog", headers=headers)).json()
    assert catalog["handlers"] == [{"id": "openai.chat", "params": params}]


def test_relai_catalog_apply_refuses_credentials(relai: Relai, tmp_path: Path) -> None:  # noqa: F811
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(
        "handlers:\n  - id: http.json\n    params: {url: 'https://93.184.215.14/x', "
        "api_key_env: DATABASE_URL}\n"
    )
    refused = relai("catalog", "apply", str(catalog))
    assert refused.returncode == 1
    assert "params.api_key_env: 'api_key_env' names an environment variable" in refused.stderr
