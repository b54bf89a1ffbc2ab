"""Secrets never shown: provider keys masked in admin views, credentials masked in logs."""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
import pytest
from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

from libs.accounts import NewUser
from libs.logs import get_logger
from libs.security import mask_secrets, mask_text
from tests.integration.api.conftest import Api, auth, serving, settings_for
from tests.integration.security.conftest import SigningKey, bearer
from tests.support import ServerUrls, create_user

PROVIDER_KEY = "sk-live-0123456789abcdefghij"


def test_mask_secrets_hides_sensitive_values_and_keeps_the_rest() -> None:
    masked = mask_secrets(
        {
            "api_key": PROVIDER_KEY,
            "model": "gpt-4o",
            "max_tokens": 256,
            "headers": {"Authorization": "Bearer abc.def", "X-Trace": "1"},
            "client_secret": "s3cr3t",
            "Password": "hunter2",
            "nested": [{"token": "t0k3n"}, "see rk_abcdefghijklmnop"],
            "url": "https://user:pw@llm.example/v1?api_key=k3y&x=1",
        }
    )
    assert masked == {
        "api_key": "***",
        "model": "gpt-4o",
        "max_tokens": 256,
        "headers": {"Authorization": "***", "X-Trace": "1"},
        "client_secret": "***",
        "Password": "***",
        "nested": [{"token": "***"}, "see rk_***"],
        "url": "https://user:***@llm.example/v1?api_key=***&x=1",
    }
    assert mask_text(f"Authorization: Bearer {PROVIDER_KEY}") == "Authorization: Bearer ***"


async def test_admin_handler_view_masks_secret_looking_params(
    api: Api, alice: NewUser, db_pool: asyncpg.Pool[Any]
) -> None:
    """The catalog refuses credentials (``test_catalog_admin``); a row that holds one anyway
    (written by hand in the database) is still shown masked."""
    root = await create_user(db_pool, name="root", credits=0, role="admin")
    await db_pool.execute(
        "INSERT INTO handlers (id, credits, params, enabled) VALUES ('openai.chat', 0, $1, true)",
        {
            "base_url": "https://93.184.215.14/v1",
            "api_key": PROVIDER_KEY,
            "model": "gpt-4o",
            "extra_headers": {"Authorization": f"Bearer {PROVIDER_KEY}"},
        },
    )
    r = await api.client.get("/admin/handlers", headers=auth(root))
    assert r.status_code == 200
    assert PROVIDER_KEY not in r.text
    handler = next(h for h in r.json() if h["id"] == "openai.chat")
    assert handler["params"] == {
        "base_url": "https://93.184.215.14/v1",
        "api_key": "***",
        "model": "gpt-4o",
        "extra_headers": {"Authorization": "***"},
    }
    assert (await api.client.get("/admin/handlers", headers=auth(alice))).status_code == 403


async def test_credentials_never_reach_the_logs(
    servers: ServerUrls,
    db_pool: asyncpg.Pool[Any],
    alice: NewUser,
    signing_keys: tuple[SigningKey, SigningKey],
    capfd: pytest.CaptureFixture[str],
) -> None:
    token = signing_keys[0].token("someone")
    async with serving(settings_for(servers, log_level="DEBUG")) as api:
        await api.client.get("/me", headers=auth(alice))
        await api.client.get("/me", headers=bearer(token))
        await api.client.get("/me", headers=bearer("rk_wrong-key-0123456789"))
        ticket = (await api.client.post("/ws/ticket", headers=auth(alice))).json()["ticket"]
        async with connect(
            f"{api.ws_url}/ws", subprotocols=[Subprotocol("ticket"), Subprotocol(ticket)]
        ) as ws:
            await ws.ping()
        async with connect(
            f"{api.ws_url}/ws?token={alice.api_key}",
            subprotocols=[Subprotocol("bearer"), Subprotocol(alice.api_key)],
        ) as ws:
            await ws.ping()
        get_logger("provider").info(
            "calling provider",
            api_key=PROVIDER_KEY,
            headers={"Authorization": f"Bearer {PROVIDER_KEY}"},
            note=f"retrying with {alice.api_key}",
        )
        logging.getLogger("some.library").warning("sent Authorization: Bearer %s", token)
    logged = capfd.readouterr().err
    assert "calling provider" in logged
    assert "sent Authorization: Bearer ***" in logged
    for secret in (alice.api_key, token, PROVIDER_KEY, "rk_wrong-key-0123456789", ticket):
        assert secret not in logged
