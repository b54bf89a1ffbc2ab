"""The prompt template library over the admin API: write, list, read, disable and fill
templates; 403 for others, 404 for unknown names, 422 for invalid entries (which write
nothing); every fill counts exactly one use."""

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from libs.accounts import NewUser
from tests.integration.api.conftest import Api, auth, serving, settings_for
from tests.support import ServerUrls, create_user

DRAGON = {
    "name": "image-refine",
    "description": "Turns a short request into a detailed image prompt",
    "category": "image",
    "template": "{subject}, {style} style, detailed, high quality",
    "example_input": {"subject": "a dragon", "style": "cinematic"},
    "example_output": "a dragon, cinematic style, detailed, high quality",
    "tags": ["image", "refine"],
}
SUMMARY: dict[str, Any] = {
    "name": "summarize",
    "category": "text",
    "template": "Summarize in {words} words:\n{text}",
    "example_input": {"words": "20", "text": "A long story."},
    "tags": ["refine"],
}


@pytest.fixture
async def admin_api(servers: ServerUrls) -> AsyncIterator[Api]:
    async with serving(settings_for(servers)) as running:
        yield running


@pytest.fixture
async def root(db_pool: "asyncpg.Pool[Any]") -> NewUser:
    return await create_user(db_pool, name="root", credits=0, role="admin")


async def _put(api: Api, admin: NewUser, body: dict[str, Any]) -> Any:
    return await api.client.put("/admin/prompt-templates", json=body, headers=auth(admin))


async def test_non_admins_are_refused(admin_api: Api, alice: NewUser) -> None:
    client, headers = admin_api.client, auth(alice)
    calls = [
        client.get("/admin/prompt-templates", headers=headers),
        client.get("/admin/prompt-templates/summarize", headers=headers),
        client.put("/admin/prompt-templates", json=SUMMARY, headers=headers),
        client.post("/admin/prompt-templates/summarize/disable", headers=headers),
        client.post(
            "/admin/prompt-templates/summarize/render", json={"variables": {}}, headers=headers
        ),
    ]
    for call in calls:
        assert (await call).status_code == 403
    assert (await client.get("/admin/prompt-templates")).status_code == 401


async def test_admin_writes_lists_reads_and_disables_templates(
    admin_api: Api, root: NewUser, db_pool: "asyncpg.Pool[Any]"
) -> None:
    client, headers = admin_api.client, auth(root)
    created = await _put(admin_api, root, DRAGON)
    assert created.status_code == 201, created.text
    view = created.json()
    assert view["variables"] == ["subject", "style"]
    assert view["usage_count"] == 0
    assert view["active"] is True
    assert {k: view[k] for k in DRAGON} == DRAGON
    assert (await _put(admin_api, root, SUMMARY)).status_code == 201

    same = await _put(admin_api, root, DRAGON)
    assert same.status_code == 200
    assert same.json()["updated_at"] == view["updated_at"]  # nothing changed
    changed = await _put(admin_api, root, {**DRAGON, "description": "Better"})
    assert changed.status_code == 200
    assert changed.json()["description"] == "Better"
    assert changed.json()["updated_at"] > view["updated_at"]
    assert changed.json()["created_at"] == view["created_at"]

    async def names(query: str) -> list[str]:
        r = await client.get(f"/admin/prompt-templates{query}", headers=headers)
        assert r.status_code == 200, r.text
        return [t["name"] for t in r.json()]

    assert await names("") == ["image-refine", "summarize"]
    assert await names("?category=image") == ["image-refine"]
    assert await names("?tag=refine") == ["image-refine", "summarize"]
    assert await names("?tag=image&category=text") == []
    assert await names("?limit=1&offset=1") == ["summarize"]

    one = await client.get("/admin/prompt-templates/summarize", headers=headers)
    assert one.status_code == 200
    assert one.json()["template"] == SUMMARY["template"]
    assert one.json()["description"] == ""
    missing = await client.get("/admin/prompt-templates/nope", headers=headers)
    assert (missing.status_code, missing.json()["code"]) == (404, "not_found")

    assert (
        await client.post("/admin/prompt-templates/summarize/disable", headers=headers)
    ).status_code == 204
    assert (
        await client.post("/admin/prompt-templates/nope/disable", headers=headers)
    ).status_code == 404
    assert await names("?active=false") == ["summarize"]
    assert await names("?active=true") == ["image-refine"]

    # Writing it again active brings it back, its uses kept.
    await db_pool.execute("UPDATE prompt_templates SET usage_count = 7 WHERE name = 'summarize'")
    back = await _put(admin_api, root, SUMMARY)
    assert (back.status_code, back.json()["active"], back.json()["usage_count"]) == (200, True, 7)


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({**SUMMARY, "template": "{text.__class__}", "example_input": {}}, "plain name"),
        ({**SUMMARY, "template": "{a.b}", "example_input": {}}, "plain name"),
        ({**SUMMARY, "template": "{a[0]}", "example_input": {}}, "plain name"),
        ({**SUMMARY, "template": "{a!r}", "example_input": {}}, "conversions"),
        ({**SUMMARY, "template": "{0}", "example_input": {}}, "plain name"),
        ({**SUMMARY, "template": "{unclosed"}, "malformed"),
        ({**SUMMARY, "example_input": {"words": "20"}}, "missing variables: text"),
        ({**SUMMARY, "example_input": {**SUMMARY["example_input"], "x": "1"}}, "unknown"),
        ({**SUMMARY, "example_input": {"words": 20, "text": "t"}}, "valid string"),
        ({**SUMMARY, "description": "a\u0000b"}, "NUL"),
        ({**SUMMARY, "example_output": "\u0000"}, "NUL"),
        ({**SUMMARY, "template": "x" * 20_001, "example_input": {}}, "at most 20000"),
        ({**SUMMARY, "name": "Not A Slug"}, "pattern"),
        ({**SUMMARY, "tags": ["a", "a"]}, "listed twice"),
        ({**SUMMARY, "tags": [f"t{i}" for i in range(21)]}, "at most 20"),
        ({**SUMMARY, "active": 1}, "valid boolean"),
        ({**SUMMARY, "usage_count": 5}, "Extra inputs"),
        ({k: v for k, v in SUMMARY.items() if k != "template"}, "template"),
    ],
)
async def test_invalid_templates_are_422_and_write_nothing(
    admin_api: Api,
    root: NewUser,
    db_pool: "asyncpg.Pool[Any]",
    body: dict[str, Any],
    fragment: str,
) -> None:
    assert (await _put(admin_api, root, DRAGON)).status_code == 201
    before = [dict(r) for r in await db_pool.fetch("SELECT * FROM prompt_templates")]
    r = await _put(admin_api, root, body)
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "invalid_inputs"
    assert fragment in r.text
    if body.get("name") == SUMMARY["name"]:  # nor over an existing template
        r = await _put(admin_api, root, {**body, "name": DRAGON["name"]})
        assert r.status_code == 422, r.text
    assert [dict(r) for r in await db_pool.fetch("SELECT * FROM prompt_templates")] == before


async def test_render_fills_the_template_and_counts_each_use(
    admin_api: Api, root: NewUser, db_pool: "asyncpg.Pool[Any]"
) -> None:
    client, headers = admin_api.client, auth(root)
    await _put(admin_api, root, DRAGON)
    path = "/admin/prompt-templates/image-refine/render"

    r = await client.post(
        path, json={"variables": {"subject": "a {cat.__class__}", "style": "ink"}}, headers=headers
    )
    assert r.status_code == 200, r.text
    # A value is never read as a template.
    assert r.json() == {
        "name": "image-refine",
        "text": "a {cat.__class__}, ink style, detailed, high quality",
        "usage_count": 1,
    }

    n = 25
    answers = await asyncio.gather(
        *(
            client.post(
                path,
                json={"variables": {"subject": f"s{i}", "style": "x"}},
                headers=headers,
            )
            for i in range(n)
        )
    )
    assert [a.status_code for a in answers] == [200] * n
    assert sorted(a.json()["usage_count"] for a in answers) == list(range(2, n + 2))
    count = "SELECT usage_count FROM prompt_templates WHERE name = 'image-refine'"
    assert await db_pool.fetchval(count) == n + 1


async def test_render_refuses_what_it_cannot_fill_and_counts_none(
    admin_api: Api, root: NewUser, db_pool: "asyncpg.Pool[Any]"
) -> None:
    client, headers = admin_api.client, auth(root)
    await _put(admin_api, root, DRAGON)
    path = "/admin/prompt-templates/image-refine/render"

    missing = await client.post(path, json={"variables": {"style": "x"}}, headers=headers)
    assert missing.status_code == 422
    assert missing.json()["missing"] == ["subject"]
    assert "missing variables: subject" in missing.json()["detail"]

    unknown = await client.post(
        path,
        json={"variables": {"subject": "a", "style": "b", "mood": "c"}},
        headers=headers,
    )
    assert (unknown.status_code, unknown.json()["unknown"]) == (422, ["mood"])

    for bad in ({"subject": 1, "style": "b"}, {"subject": "\u0000", "style": "b"}):
        r = await client.post(path, json={"variables": bad}, headers=headers)
        assert r.status_code == 422, r.text

    nope = await client.post(
        "/admin/prompt-templates/nope/render", json={"variables": {}}, headers=headers
    )
    assert nope.status_code == 404

    await client.post("/admin/prompt-templates/image-refine/disable", headers=headers)
    disabled = await client.post(
        path, json={"variables": {"subject": "a", "style": "b"}}, headers=headers
    )
    assert disabled.status_code == 409
    assert "disabled" in disabled.json()["detail"]
    count = "SELECT usage_count FROM prompt_templates WHERE name = 'image-refine'"
    assert await db_pool.fetchval(count) == 0
