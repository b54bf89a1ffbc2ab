"""``GET /capabilities``: what the deployment offers, to any signed-in client."""

from typing import Any

import asyncpg

from libs.accounts import NewUser
from libs.catalog import CatalogSpec, apply_catalog
from tests.integration.api.conftest import auth, serving, settings_for
from tests.support import ServerUrls

CATALOG = CatalogSpec.model_validate(
    {
        "handlers": [{"id": "echo.text"}],
        "offers": [
            {
                "service": "text",
                "action": "shout",
                "price": 2,
                "prompt_template": "{words}!",
                "handler": "echo.text",
                "tiers": {"flex": 50},
            },
            {
                "service": "text",
                "action": "whisper",
                "price": 1,
                "prompt_template": "({words})",
                "handler": "echo.text",
            },
            {
                "service": "image",
                "action": "draw",
                "price": 5,
                "prompt_template": "{prompt}",
                "handler": "echo.text",
            },
            {
                "service": "old",
                "action": "gone",
                "price": 1,
                "prompt_template": "{x}",
                "handler": "echo.text",
                "enabled": False,
            },
        ],
        "deals": [
            {"slug": "loud", "offers": ["text/shout", "text/whisper"], "price": 2},
            {"slug": "retired", "offers": ["text/shout"], "enabled": False},
        ],
    }
)


async def test_a_client_sees_the_enabled_services_deals_and_no_intents_yet(
    servers: ServerUrls, db_pool: "asyncpg.Pool[Any]", alice: NewUser
) -> None:
    async with db_pool.acquire() as conn:
        await apply_catalog(conn, CATALOG)
    async with serving(settings_for(servers)) as api:
        assert (await api.client.get("/capabilities")).status_code == 401
        r = await api.client.get("/capabilities", headers=auth(alice))
    assert r.status_code == 200, r.text
    body = r.json()
    assert [(s["name"], [a["action"] for a in s["actions"]]) for s in body["services"]] == [
        ("image", ["draw"]),
        ("text", ["shout", "whisper"]),
    ]
    shout = body["services"][1]["actions"][0]
    assert shout["price"] == 2
    assert shout["tiers"] == {"default": 100, "flex": 50}
    assert shout["inputs"]["required"] == ["words"]
    assert shout["links"] == {"submit": "/svc/text/shout"}
    assert "prompt_template" not in str(body)
    assert "echo.text" not in str(body)  # nor the handler
    assert [(d["slug"], d["price"]) for d in body["deals"]] == [("loud", 2)]
    assert body["intents"] == []
