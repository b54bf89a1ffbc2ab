"""HTTP hardening: trailing slashes are accepted (no redirect reflecting ``Host``), every error is
one bounded JSON shape (no input echoed, no internals), every answer carries the security
headers, and the documentation pages load nothing from another host."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import orjson

from libs.accounts import NewUser
from services.api.app import create_app
from tests.integration.api.conftest import Api, auth, serving, settings_for
from tests.support import ServerUrls, load_demo_catalog

SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}


def _is_error_shape(body: Any, code: str) -> None:
    assert isinstance(body, dict)
    assert isinstance(body["detail"], str)
    assert body["code"] == code


async def test_a_trailing_slash_is_served_not_redirected(api: Api, alice: NewUser) -> None:
    forged = {**auth(alice), "host": "evil.example"}
    slashed = await api.client.post("/svc/demo/echo/", json={"text": "a"}, headers=forged)
    assert slashed.status_code == 202
    assert "location" not in slashed.headers
    assert "evil.example" not in slashed.text
    plain = await api.client.post("/svc/demo/echo", json={"text": "a"}, headers=auth(alice))
    assert (plain.status_code, plain.json()["id"]) == (202, slashed.json()["id"])
    me = await api.client.get("/me/", headers=forged)
    assert me.status_code == 200
    assert "location" not in me.headers
    assert me.json() == (await api.client.get("/me", headers=auth(alice))).json()


async def test_a_validation_error_is_bounded_and_echoes_no_input(api: Api, alice: NewUser) -> None:
    body = orjson.dumps({"prompt": ["x" * 1_000_000], "extra": "y" * 30_000})
    r = await api.client.post(
        "/ask", content=body, headers={**auth(alice), "content-type": "application/json"}
    )
    assert r.status_code == 422
    assert len(r.content) < 4096
    assert "xxxx" not in r.text
    assert "yyyy" not in r.text
    _is_error_shape(r.json(), "invalid_inputs")
    fields = {tuple(e["loc"]) for e in r.json()["errors"]}
    assert ("body", "prompt") in fields
    assert ("body", "extra") in fields
    for error in r.json()["errors"]:
        assert set(error) == {"loc", "msg", "type"}


async def test_too_large_not_found_and_wrong_method_are_json(api: Api, alice: NewUser) -> None:
    huge = orjson.dumps({"text": "x" * 1_100_000})
    for headers in ({}, {"content-type": "application/json"}):
        too_big = await api.client.post(
            "/svc/demo/echo", content=huge, headers={**auth(alice), **headers}
        )
        assert too_big.status_code == 413
        assert too_big.headers["content-type"] == "application/json"
        _is_error_shape(too_big.json(), "too_large")

    async def chunks() -> AsyncIterator[bytes]:  # no content-length: counted as it comes
        for start in range(0, len(huge), 65536):
            yield huge[start : start + 65536]

    streamed = await api.client.post("/svc/demo/echo", content=chunks(), headers=auth(alice))
    assert streamed.status_code == 413
    _is_error_shape(streamed.json(), "too_large")
    # Too large for a path that exists nowhere: still the JSON 413, not plain text.
    nowhere = await api.client.post("/nowhere", content=huge, headers=auth(alice))
    assert nowhere.status_code == 413
    _is_error_shape(nowhere.json(), "too_large")
    missing = await api.client.get("/no/such/path", headers=auth(alice))
    assert missing.status_code == 404
    _is_error_shape(missing.json(), "not_found")
    wrong = await api.client.delete("/health")
    assert wrong.status_code == 405
    _is_error_shape(wrong.json(), "method_not_allowed")
    assert "allow" in wrong.headers


async def test_an_unexpected_error_is_a_generic_json_500(
    servers: ServerUrls, db_pool: asyncpg.Pool[Any]
) -> None:
    await load_demo_catalog(db_pool)
    settings = settings_for(servers)
    app = create_app(settings)

    async def boom() -> None:
        raise RuntimeError("secret internals: password=hunter2 at /srv/relai/x.py")

    app.add_api_route("/boom", boom, methods=["GET"])
    async with serving(settings, app) as running:
        r = await running.client.get("/boom")
        assert r.status_code == 500
        _is_error_shape(r.json(), "internal_error")
        assert "secret" not in r.text
        assert "hunter2" not in r.text
        assert "RuntimeError" not in r.text
        assert r.headers["x-content-type-options"] == "nosniff"


async def test_security_headers_on_json_and_on_the_docs(api: Api, alice: NewUser) -> None:
    for path in ("/health", "/me", "/no/such/path"):
        r = await api.client.get(path, headers=auth(alice))
        for name, value in SECURITY_HEADERS.items():
            assert r.headers[name] == value, (path, name)
        assert "content-security-policy" not in r.headers
    for path in ("/docs", "/redoc"):
        page = await api.client.get(path)
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        for name, value in SECURITY_HEADERS.items():
            assert page.headers[name] == value
        csp = _directives(page.headers["content-security-policy"])
        assert csp["default-src"] == ["'none'"]
        assert csp["frame-ancestors"] == ["'none'"]
        assert csp["connect-src"] == ["'self'"]
        for directive, sources in csp.items():
            # This origin, hashes of inline text, data: images, ReDoc's blob: worker; no host,
            # no scheme wildcard, no 'unsafe-inline'.
            for source in sources:
                assert source in {"'self'", "'none'", "data:", "blob:"} or re.fullmatch(
                    r"'sha256-[A-Za-z0-9+/]+={0,2}'", source
                ), (path, directive, source)
            assert "data:" not in sources or directive == "img-src", (path, directive)
            assert "blob:" not in sources or directive == "worker-src", (path, directive)


def _directives(policy: str) -> dict[str, list[str]]:
    return {
        name: sources
        for name, *sources in (part.split() for part in policy.split(";") if part.strip())
    }


def _inline(tag: str, html: str) -> list[str]:
    return re.findall(rf"<{tag}>(.*?)</{tag}>", html, re.DOTALL)


def _sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


async def test_the_docs_load_everything_from_the_api_itself(api: Api) -> None:
    """No CDN: every URL a documentation page names is a path of this API, served with the
    content type the browser needs under ``nosniff``, and its inline code is the code the
    policy allows by hash."""
    expected = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}
    for path in ("/docs", "/redoc"):
        page = await api.client.get(path)
        html = page.text
        assert "//" not in re.sub(r"<script>.*?</script>|<!--.*?-->", "", html, flags=re.DOTALL)
        assert not re.search(r"https?:", html), path
        urls = re.findall(r'(?:src|href|spec-url)="([^"]+)"', html)
        assert urls, path
        for url in urls:
            assert url.startswith("/"), (path, url)
            asset = await api.client.get(url)
            assert asset.status_code == 200, (path, url)
            for name, value in SECURITY_HEADERS.items():
                assert asset.headers[name] == value
            suffix = url[url.rfind(".") :]
            if suffix in expected:
                assert asset.headers["content-type"].startswith(expected[suffix]), url
                assert int(asset.headers["content-length"]) > 1000, url
        csp = _directives(page.headers["content-security-policy"])
        for tag, directive in (("script", "script-src"), ("style", "style-src")):
            for body in _inline(tag, html):
                assert _sha256(body) in csp[directive], (path, tag)
    swagger = (await api.client.get("/docs")).text
    assert "/docs/assets/swagger-ui-bundle.js" in swagger
    assert "/docs/assets/swagger-ui.css" in swagger
    assert "/docs/assets/redoc.standalone.js" in (await api.client.get("/redoc")).text
    unknown = await api.client.get("/docs/assets/..%2f..%2fpyproject.toml")
    assert unknown.status_code == 404
    _is_error_shape(unknown.json(), "not_found")
    _is_error_shape((await api.client.get("/docs/assets/index.html")).json(), "not_found")
