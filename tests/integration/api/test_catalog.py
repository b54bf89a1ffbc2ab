import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from libs.accounts import NewUser
from libs.catalog import CatalogSpec, apply_catalog
from services.api.text import STORABLE_PATTERN
from tests.integration.api.conftest import Api, auth, serving, settings_for
from tests.openapi_check import assert_openapi_3
from tests.support import DEMO_CATALOG, ServerUrls, load_demo_catalog

OFFER_KEYS = {
    "service",
    "action",
    "price",
    "input_price",
    "output_price",
    "max_output_tokens",
    "create_qty",
    "aliases",
    "model",
    "inputs",
    "files",
    "tiers",
    "default_tier",
    "links",
}


@pytest.fixture
async def quick_api(servers: ServerUrls, db_pool: "asyncpg.Pool[Any]") -> AsyncIterator[Api]:
    """An API whose catalog reloads every 0.1 s, so that offer changes show at once."""
    await load_demo_catalog(db_pool)
    async with serving(settings_for(servers, catalog_refresh_s=0.1)) as running:
        yield running


async def _listed(api: Api, user: NewUser) -> set[tuple[str, str]]:
    r = await api.client.get("/svc", headers=auth(user))
    assert r.status_code == 200, r.text
    return {(o["service"], o["action"]) for o in r.json()}


async def _until_listed(api: Api, user: NewUser, offer: tuple[str, str], listed: bool) -> None:
    for _ in range(100):
        if (offer in await _listed(api, user)) == listed:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{offer} still {'missing' if listed else 'listed'}")


async def test_listing_shows_every_enabled_offer_and_no_operator_fields(
    api: Api, alice: NewUser
) -> None:
    r = await api.client.get("/svc", headers=auth(alice))
    assert r.status_code == 200, r.text
    offers = r.json()
    expected = sorted((o.service, o.action) for o in DEMO_CATALOG.offers)
    assert [(o["service"], o["action"]) for o in offers] == expected
    for offer in offers:
        assert set(offer) == OFFER_KEYS
        assert offer["links"] == {"submit": f"/svc/{offer['service']}/{offer['action']}"}
    greet = next(o for o in offers if o["action"] == "greet")
    assert greet == {
        "service": "demo",
        "action": "greet",
        "price": 3,
        "input_price": None,
        "output_price": None,
        "max_output_tokens": None,
        "create_qty": 1,
        "aliases": [],
        "inputs": {
            "type": "object",
            "properties": {
                "name": {"type": "string", "pattern": STORABLE_PATTERN},
                "age": {"type": "string", "pattern": STORABLE_PATTERN},
            },
            "required": ["name", "age"],
            "additionalProperties": False,
        },
        "files": {},
        "tiers": {"default": 100},
        "default_tier": "default",
        "model": None,
        "links": {"submit": "/svc/demo/greet"},
    }
    assert "delay_ms" not in r.text
    assert "echo.delay" not in r.text


async def test_detail_is_the_listed_offer_and_404_when_unknown(api: Api, alice: NewUser) -> None:
    listing = (await api.client.get("/svc", headers=auth(alice))).json()
    r = await api.client.get("/svc/demo/sleep", headers=auth(alice))
    assert r.status_code == 200, r.text
    assert r.json() == next(o for o in listing if o["action"] == "sleep")
    assert r.json()["inputs"]["required"] == ["text"]
    r = await api.client.get("/svc/demo/nope", headers=auth(alice))
    assert r.status_code == 404
    assert r.json()["code"] == "not_found"


@pytest.mark.parametrize("path", ["/svc", "/svc/demo/greet"])
async def test_the_catalog_needs_a_key(api: Api, path: str) -> None:
    assert (await api.client.get(path)).status_code == 401
    r = await api.client.get(path, headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401


async def test_a_disabled_offer_disappears(
    quick_api: Api, alice: NewUser, db_pool: "asyncpg.Pool[Any]"
) -> None:
    assert ("demo", "greet") in await _listed(quick_api, alice)
    await db_pool.execute(
        "UPDATE offers SET enabled = false WHERE service = 'demo' AND action = 'greet'"
    )
    await _until_listed(quick_api, alice, ("demo", "greet"), listed=False)
    assert (await quick_api.client.get("/svc/demo/greet", headers=auth(alice))).status_code == 404
    document = (await quick_api.client.get("/openapi.json")).json()
    assert "/svc/demo/greet" not in document["paths"]
    assert "/svc/demo/echo" in document["paths"]


async def test_openapi_has_a_path_per_offer(api: Api) -> None:
    r = await api.client.get("/openapi.json")
    assert r.status_code == 200, r.text
    document = r.json()
    assert_openapi_3(document)
    for offer in DEMO_CATALOG.offers:
        assert "post" in document["paths"][f"/svc/{offer.service}/{offer.action}"]
    greet = document["paths"]["/svc/demo/greet"]["post"]
    schema = greet["requestBody"]["content"]["application/json"]["schema"]
    assert schema["required"] == ["name", "age"]
    assert schema["additionalProperties"] is False
    assert greet["responses"]["202"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Submitted"
    }
    assert "Submitted" in document["components"]["schemas"]
    assert "post" in document["paths"]["/svc/{service_name}/{action}"]
    assert "Hello {name}" not in r.text


async def test_openapi_follows_a_new_offer(
    quick_api: Api, alice: NewUser, db_pool: "asyncpg.Pool[Any]"
) -> None:
    await _listed(quick_api, alice)
    async with db_pool.acquire() as conn:
        await apply_catalog(conn, _one_offer("demo", "shout", "{words}!"))
    await _until_listed(quick_api, alice, ("demo", "shout"), listed=True)
    document = (await quick_api.client.get("/openapi.json")).json()
    shout = document["paths"]["/svc/demo/shout"]["post"]
    assert shout["requestBody"]["content"]["application/json"]["schema"]["required"] == ["words"]


async def test_an_offer_shows_its_token_prices_in_the_listing_and_the_document(
    quick_api: Api, alice: NewUser, db_pool: "asyncpg.Pool[Any]"
) -> None:
    spec = _one_offer(
        "demo", "words", "{text}", input_price=0.25, output_price=2, max_output_tokens=64
    )
    async with db_pool.acquire() as conn:
        await apply_catalog(conn, spec, prune=False)
    await _until_listed(quick_api, alice, ("demo", "words"), listed=True)
    r = await quick_api.client.get("/svc/demo/words", headers=auth(alice))
    assert r.status_code == 200, r.text
    assert {k: r.json()[k] for k in ("price", "input_price", "output_price")} == {
        "price": 1,
        "input_price": 0.25,
        "output_price": 2,
    }
    assert r.json()["max_output_tokens"] == 64
    document = (await quick_api.client.get("/openapi.json")).json()
    description = document["paths"]["/svc/demo/words"]["post"]["description"]
    assert "plus 0.25 per 1,000 input tokens and 2 per 1,000 output tokens" in description


async def test_docs_serve_the_document(api: Api) -> None:
    for page in ("/docs", "/redoc"):
        r = await api.client.get(page)
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/html")
        assert "/openapi.json" in r.text


def _one_offer(service: str, action: str, template: str, **extra: Any) -> CatalogSpec:
    return CatalogSpec.model_validate(
        {
            "handlers": [{"id": "echo.text"}],
            "offers": [
                {
                    "service": service,
                    "action": action,
                    "price": 1,
                    "prompt_template": template,
                    "handler": "echo.text",
                    **extra,
                }
            ],
        }
    )


async def test_request_views_win_over_an_offer_named_request(
    quick_api: Api, alice: NewUser, db_pool: "asyncpg.Pool[Any]"
) -> None:
    r = await quick_api.client.post(
        "/svc/demo/greet", json={"name": "Ada", "age": "36"}, headers=auth(alice)
    )
    assert r.status_code == 202, r.text
    request_id = r.json()["id"]
    # Catalog files may not name a service "request"; a row written behind their back (an
    # older catalog, a hand-made row) still must not shadow the request view.
    with pytest.raises(ValueError, match="reserved"):
        _one_offer("request", request_id, "{text}")
    await db_pool.execute(
        """INSERT INTO offers (id, service, action, price, prompt_template, handler_id)
           VALUES (gen_random_uuid(), 'request', $1, 1, '{text}', 'echo.text')""",
        request_id,
    )
    await _until_listed(quick_api, alice, ("request", request_id), listed=True)
    r = await quick_api.client.get(f"/svc/request/{request_id}", headers=auth(alice))
    assert r.status_code == 200, r.text
    assert r.json()["id"] == request_id
    assert (r.json()["service"], r.json()["action"]) == ("demo", "greet")
    r = await quick_api.client.get("/svc/requests", headers=auth(alice))
    assert r.status_code == 200, r.text
    assert [item["id"] for item in r.json()["items"]] == [request_id]
