"""The console's and the admin panel's pages as HTTP answers: public shells with a strict CSP
and the security headers, their assets from the package, nothing else served from there; CORS
off by default and, when configured, for the listed origins only; the pages off with
``RELAI_UI_ENABLED=false``."""

import pytest

from tests.integration.api.conftest import Api, serving, settings_for
from tests.support import ServerUrls

PAGES = ("/console", "/admin/ui")


@pytest.mark.parametrize("path", PAGES)
async def test_the_pages_carry_a_strict_policy(api: Api, path: str) -> None:
    r = await api.client.get(path)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    policy = dict(part.split(" ", 1) for part in r.headers["content-security-policy"].split("; "))
    assert policy["default-src"] == "'none'"
    assert policy["script-src"] == "'self'"
    assert policy["style-src"] == "'self'"
    assert policy["connect-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'"
    assert (r.headers["x-frame-options"], r.headers["x-content-type-options"]) == (
        "DENY",
        "nosniff",
    )
    assert "<script>" not in r.text  # no inline script: modules from /ui/assets only
    assert 'src="/ui/assets/' in r.text
    assert "rk_" not in r.text


async def test_assets_are_the_packages_files_only(api: Api) -> None:
    for name, kind in (("console.js", "text/javascript"), ("ui.css", "text/css")):
        r = await api.client.get(f"/ui/assets/{name}")
        assert r.status_code == 200
        assert r.headers["content-type"].startswith(kind)
        assert r.headers["cache-control"] == "no-cache"
    for name in ("console.html", "../pages.py", "%2e%2e%2fpages.py", "nope.js"):
        assert (await api.client.get(f"/ui/assets/{name}")).status_code == 404
    config = await api.client.get("/console/config")
    assert config.json() == {"oidc": None}


async def test_cors_is_off_by_default(api: Api) -> None:
    preflight = await api.client.options(
        "/svc",
        headers={"Origin": "https://app.example.com", "Access-Control-Request-Method": "GET"},
    )
    assert "access-control-allow-origin" not in preflight.headers
    r = await api.client.get("/health", headers={"Origin": "https://app.example.com"})
    assert "access-control-allow-origin" not in r.headers


async def test_cors_answers_the_listed_origins_only(servers: ServerUrls) -> None:
    settings = settings_for(servers, cors_allowed_origins=["https://app.example.com"])
    async with serving(settings) as api:
        preflight = await api.client.options(
            "/svc/demo/echo",
            headers={
                "Origin": "https://app.example.com",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type, idempotency-key",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "https://app.example.com"
        assert "access-control-allow-credentials" not in preflight.headers
        r = await api.client.get("/svc", headers={"Origin": "https://app.example.com"})
        assert r.status_code == 401  # the API's answer, readable by that origin
        assert r.headers["access-control-allow-origin"] == "https://app.example.com"
        assert "x-request-id" in r.headers["access-control-expose-headers"]
        other = await api.client.options(
            "/svc",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
        )
        assert other.status_code == 400
        assert "access-control-allow-origin" not in other.headers


async def test_the_pages_can_be_turned_off(servers: ServerUrls) -> None:
    async with serving(settings_for(servers, ui_enabled=False)) as api:
        for path in (*PAGES, "/ui/assets/console.js", "/console/config"):
            r = await api.client.get(path)
            assert (r.status_code, r.json()["code"]) == (404, "not_found")
