"""The catalog over the admin API: create, update, disable; 403 for others; 422 for invalid
entries, which write nothing."""

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from libs.accounts import NewUser
from tests.integration.api.conftest import Api, auth, serving, settings_for
from tests.support import ServerUrls, create_user

OFFER = {
    "service": "text",
    "action": "shout",
    "price": 4,
    "prompt_template": "{words}!",
    "handler": "echo.text",
}


@pytest.fixture
async def admin_api(servers: ServerUrls) -> AsyncIterator[Api]:
    async with serving(settings_for(servers, catalog_refresh_s=0.1)) as running:
        yield running


@pytest.fixture
async def root(db_pool: "asyncpg.Pool[Any]") -> NewUser:
    return await create_user(db_pool, name="root", credits=0, role="admin")


async def _counts(pool: "asyncpg.Pool[Any]") -> tuple[int, int, int]:
    return (
        await pool.fetchval("SELECT count(*) FROM handlers"),
        await pool.fetchval("SELECT count(*) FROM offers"),
        await pool.fetchval("SELECT count(*) FROM deals"),
    )


async def test_non_admins_are_refused(admin_api: Api, alice: NewUser) -> None:
    client, headers = admin_api.client, auth(alice)
    calls = [
        client.put("/admin/handlers", json={"id": "echo.text"}, headers=headers),
        client.put("/admin/offers", json=OFFER, headers=headers),
        client.put("/admin/deals", json={"slug": "d", "offers": ["a/b"]}, headers=headers),
        client.post("/admin/deals/d/disable", headers=headers),
        client.get("/admin/catalog", headers=headers),
    ]
    for call in calls:
        assert (await call).status_code == 403


async def test_admin_creates_updates_and_disables_the_catalog(
    admin_api: Api, root: NewUser, alice: NewUser, db_pool: "asyncpg.Pool[Any]"
) -> None:
    client, headers = admin_api.client, auth(root)
    created = await client.put("/admin/handlers", json={"id": "echo.text"}, headers=headers)
    assert created.status_code == 201
    updated = await client.put(
        "/admin/handlers", json={"id": "echo.text", "credits": 2}, headers=headers
    )
    assert updated.status_code == 200
    assert (await client.put("/admin/offers", json=OFFER, headers=headers)).status_code == 201
    offer = await client.get("/svc/text/shout", headers=auth(alice))
    assert offer.json()["inputs"]["required"] == ["words"]

    deal = {"slug": "loud", "offers": ["text/shout", "text/shout"], "price_modifier": 12.5}
    assert (await client.put("/admin/deals", json=deal, headers=headers)).status_code == 201
    listed = (await client.get("/deals", headers=auth(alice))).json()
    assert [(d["slug"], d["price"]) for d in listed] == [("loud", 7)]  # 8 less 1 (1.0 off)

    assert (await client.post("/admin/deals/loud/disable", headers=headers)).status_code == 204
    assert (await client.post("/admin/deals/nope/disable", headers=headers)).status_code == 404
    exported = (await client.get("/admin/catalog", headers=headers)).json()
    assert exported["deals"] == [
        {"slug": "loud", "offers": ["text/shout"] * 2, "price_modifier": 12.5, "enabled": False}
    ]
    assert exported["handlers"] == [{"id": "echo.text", "credits": 2}]
    await asyncio.sleep(0.3)  # the API reloads its catalog every 0.1 s here
    assert (await client.get("/deals/loud", headers=auth(alice))).status_code == 404

    assert (
        await client.post("/admin/offers/text/shout/disable", headers=headers)
    ).status_code == 204
    await asyncio.sleep(0.3)
    assert (await client.get("/svc/text/shout", headers=auth(alice))).status_code == 404


@pytest.mark.parametrize(
    ("path", "body", "fragment"),
    [
        ("/admin/offers", {**OFFER, "handler": "nope.x"}, "unknown handler 'nope.x'"),
        ("/admin/offers", {**OFFER, "prompt_template": "{words.__class__}"}, "plain name"),
        ("/admin/offers", {**OFFER, "service": "requests"}, "reserved"),
        ("/admin/offers", {**OFFER, "output_price": 1}, "needs max_output_tokens"),
        ("/admin/offers", {**OFFER, "input_price": "0.5"}, "input_price: Input should be"),
        ("/admin/offers", {**OFFER, "aliases": ["demo/ask"]}, "aliases.0: String should match"),
        ("/admin/offers", {**OFFER, "aliases": ["x", "x"]}, "alias 'x' is listed twice"),
        ("/admin/deals", {"slug": "d", "offers": ["text/nope"]}, "unknown offers: text/nope"),
        (
            "/admin/deals",
            {"slug": "d", "offers": ["a/b"], "price": 1, "price_modifier": 3},
            "either a fixed price",
        ),
        ("/admin/handlers", {"id": "Not A Handler"}, "pattern"),
        (
            "/admin/handlers",
            {"id": "openai.chat", "params": {"base_url": "http://169.254.169.254/latest"}},
            "params.base_url",
        ),
        (
            "/admin/handlers",
            {"id": "openai.chat", "params": {"base_url": "http://0x7f.1:8080/v1"}},
            "params.base_url",
        ),
    ],
)
async def test_invalid_entries_are_422_and_write_nothing(
    admin_api: Api,
    root: NewUser,
    db_pool: "asyncpg.Pool[Any]",
    path: str,
    body: dict[str, Any],
    fragment: str,
) -> None:
    await admin_api.client.put("/admin/handlers", json={"id": "echo.text"}, headers=auth(root))
    before = await _counts(db_pool)
    r = await admin_api.client.put(path, json=body, headers=auth(root))
    assert r.status_code == 422, r.text
    assert fragment in r.text
    assert await _counts(db_pool) == before


async def test_token_prices_round_trip_and_keep_out_of_deals(
    admin_api: Api, root: NewUser, db_pool: "asyncpg.Pool[Any]"
) -> None:
    client, headers = admin_api.client, auth(root)
    await client.put("/admin/handlers", json={"id": "echo.text"}, headers=headers)
    priced = {**OFFER, "input_price": 0.125, "output_price": 3, "max_output_tokens": 512}
    r = await client.put("/admin/offers", json=priced, headers=headers)
    assert r.status_code == 201, r.text
    assert {k: r.json()[k] for k in ("input_price", "output_price", "max_output_tokens")} == {
        "input_price": 0.125,
        "output_price": 3,
        "max_output_tokens": 512,
    }
    (exported,) = (await client.get("/admin/catalog", headers=headers)).json()["offers"]
    assert exported == {**priced, "handler": "echo.text"}

    deal = {"slug": "d", "offers": ["text/shout"]}
    r = await client.put("/admin/deals", json=deal, headers=headers)
    assert r.status_code == 422, r.text
    assert "names offer 'text/shout', which has per-token prices" in r.json()["detail"]
    assert await _counts(db_pool) == (1, 1, 0)

    assert (await client.put("/admin/offers", json=OFFER, headers=headers)).status_code == 200
    assert (await client.put("/admin/deals", json=deal, headers=headers)).status_code == 201
    r = await client.put("/admin/offers", json=priced, headers=headers)
    assert r.status_code == 422, r.text
    assert "deal 'd' names offer 'text/shout'" in r.json()["detail"]
    assert await db_pool.fetchval("SELECT input_price FROM offers") is None


async def test_aliases_round_trip_and_name_one_enabled_offer(
    admin_api: Api, root: NewUser, alice: NewUser, db_pool: "asyncpg.Pool[Any]"
) -> None:
    client, headers = admin_api.client, auth(root)
    await client.put("/admin/handlers", json={"id": "echo.text"}, headers=headers)
    named = {**OFFER, "aliases": ["gpt-4o", "shouter"]}
    r = await client.put("/admin/offers", json=named, headers=headers)
    assert r.status_code == 201, r.text
    assert r.json()["aliases"] == ["gpt-4o", "shouter"]
    (exported,) = (await client.get("/admin/catalog", headers=headers)).json()["offers"]
    assert exported == named
    offer = (await client.get("/svc/text/shout", headers=auth(alice))).json()
    assert offer["aliases"] == ["gpt-4o", "shouter"]

    other = {**OFFER, "action": "whisper", "aliases": ["quiet", "gpt-4o"]}
    r = await client.put("/admin/offers", json=other, headers=headers)
    assert r.status_code == 422, r.text
    assert r.json()["detail"] == (
        "offer text/whisper cannot have the alias 'gpt-4o': the offer text/shout has it"
    )
    assert await _counts(db_pool) == (1, 1, 0)
    # Disabled, the first lets its aliases go.
    await client.post("/admin/offers/text/shout/disable", headers=headers)
    assert (await client.put("/admin/offers", json=other, headers=headers)).status_code == 201
    await asyncio.sleep(0.3)  # the API reloads its catalog every 0.1 s here
    listed = (await client.get("/svc", headers=auth(alice))).json()
    assert [(o["action"], o["aliases"]) for o in listed] == [("whisper", ["quiet", "gpt-4o"])]


async def test_file_inputs_round_trip_and_keep_out_of_deals(
    admin_api: Api, root: NewUser, alice: NewUser, db_pool: "asyncpg.Pool[Any]"
) -> None:
    client, headers = admin_api.client, auth(root)
    await client.put("/admin/handlers", json={"id": "echo.text"}, headers=headers)
    files = {"picture": {"types": ["image/png"], "max_bytes": 1000}, "mask": {"required": False}}
    with_files = {**OFFER, "files": files}
    r = await client.put("/admin/offers", json=with_files, headers=headers)
    assert r.status_code == 201, r.text
    (exported,) = (await client.get("/admin/catalog", headers=headers)).json()["offers"]
    assert exported == {**with_files, "handler": "echo.text"}
    await asyncio.sleep(0.2)
    view = (await client.get("/svc/text/shout", headers=auth(alice))).json()
    assert view["files"]["picture"] == {
        "types": ["image/png"],
        "max_bytes": 1000,
        "max_pixels": 40_000_000,
        "required": True,
    }
    assert view["inputs"]["required"] == ["words", "picture"]
    assert view["inputs"]["properties"]["mask"]["pattern"] == "^file-[0-9a-f]{32}$"

    for refused, says in (
        ({**OFFER, "files": {"words": {}}}, "file inputs and template variables share names"),
        ({**OFFER, "files": {"a-b": {}}}, "files.a-b"),
        ({**OFFER, "files": {"x": {"types": ["image/svg+xml"]}}}, "files.x.types.0"),
        ({**OFFER, "files": {"x": {"max_bytes": 60 * 2**20}}}, "files.x.max_bytes"),
        ({**OFFER, "files": {"x": {"max_pixels": 10**9}}}, "files.x.max_pixels"),
    ):
        r = await client.put("/admin/offers", json=refused, headers=headers)
        assert r.status_code == 422, r.text
        assert says in r.text, r.text

    deal = {"slug": "d", "offers": ["text/shout"]}
    r = await client.put("/admin/deals", json=deal, headers=headers)
    assert r.status_code == 422, r.text
    assert "names offer 'text/shout', which takes file inputs" in r.json()["detail"]
    assert await _counts(db_pool) == (1, 1, 0)
    assert (await client.put("/admin/offers", json=OFFER, headers=headers)).status_code == 200
    assert (await client.put("/admin/deals", json=deal, headers=headers)).status_code == 201
    r = await client.put("/admin/offers", json=with_files, headers=headers)
    assert r.status_code == 422, r.text
    assert "deal 'd' names offer 'text/shout', which takes file inputs" in r.json()["detail"]
    assert await db_pool.fetchval("SELECT files FROM offers") == {}


MODEL = {
    "name": "llama3",
    "version": "v1",
    "handler": "openai.chat",
    "context_window": 200,
    "max_output_tokens": 50,
    "deployments": [{"integration": "vllm_a", "weight": 2}],
    "default": True,
}


async def test_admin_adds_a_version_switches_the_default_and_an_offer_follows(
    admin_api: Api, root: NewUser, alice: NewUser, db_pool: "asyncpg.Pool[Any]"
) -> None:
    client, headers = admin_api.client, auth(root)
    offer = {**OFFER, "handler": "openai.chat", "model": "llama3"}
    # No model yet: the offer naming it is refused, as one naming a handler that is missing.
    assert (
        await client.put("/admin/handlers", json={"id": "openai.chat"}, headers=headers)
    ).status_code == 201
    refused = await client.put("/admin/offers", json=offer, headers=headers)
    assert refused.status_code == 422, refused.text
    assert "unknown model 'llama3'" in refused.json()["detail"]
    assert (await client.put("/admin/models", json=MODEL, headers=headers)).status_code == 201
    assert (await client.put("/admin/models", json=MODEL, headers=headers)).status_code == 200
    assert (await client.put("/admin/offers", json=offer, headers=headers)).status_code == 201
    # A model whose handler is unknown, or whose output cannot fit its window: 422.
    for bad in ({**MODEL, "handler": "nope.none"}, {**MODEL, "max_output_tokens": 201}):
        r = await client.put("/admin/models", json=bad, headers=headers)
        assert r.status_code == 422, r.text
    # Non-admins cannot.
    assert (await client.put("/admin/models", json=MODEL, headers=auth(alice))).status_code == 403

    async def routed_to() -> str:
        for _ in range(100):
            offers = (await client.get("/svc", headers=auth(alice))).json()
            found = [o for o in offers if o["action"] == "shout"]
            if found:
                return str(found[0]["model"]["version"])
            await asyncio.sleep(0.05)
        raise AssertionError("the offer never showed")

    assert await routed_to() == "v1"
    v2 = {**MODEL, "version": "v2", "context_window": 400}
    assert (await client.put("/admin/models", json=v2, headers=headers)).status_code == 201
    for _ in range(100):
        if await routed_to() == "v2":
            break
        await asyncio.sleep(0.05)
    assert await routed_to() == "v2"
    defaults = await db_pool.fetch("SELECT version FROM models WHERE is_default")
    assert [r["version"] for r in defaults] == ["v2"]

    # The offer routes to v2, the default: it cannot go until another version is.
    r = await client.post("/admin/models/llama3/v2/disable", headers=headers)
    assert r.status_code == 422, r.text
    assert "offer text/shout would have no enabled version of model llama3" in r.json()["detail"]
    unset = await client.put("/admin/models", json={**v2, "default": False}, headers=headers)
    assert unset.status_code == 422, unset.text
    assert (await client.put("/admin/models", json=MODEL, headers=headers)).status_code == 200
    r = await client.post("/admin/models/llama3/v2/disable", headers=headers)
    assert r.status_code == 204, r.text
    assert (
        await client.post("/admin/models/llama3/v9/disable", headers=headers)
    ).status_code == 404
    catalog = (await client.get("/admin/catalog", headers=headers)).json()
    assert {(m["version"], m.get("enabled", True)) for m in catalog["models"]} == {
        ("v1", True),
        ("v2", False),
    }
