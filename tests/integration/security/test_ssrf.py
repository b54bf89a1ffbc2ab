"""SSRF guard: handler URLs configured by admins, and the HTTP client for provider calls."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from aiohttp import web

from libs.catalog import CatalogSpec, apply_catalog
from libs.security.ssrf import (
    RedirectRefused,
    UnsafeUrlError,
    UrlPolicy,
    check_url,
    guarded_client,
)
from tests.integration.cli.conftest import Relai, relai  # noqa: F401 - fixture

REFUSED = [
    "http://127.0.0.1/",
    "http://127.0.0.1:8000/v1",
    "http://localhost./",
    "http://LOCALHOST:11434",
    "http://2130706433/",
    "http://0x7f000001/",
    "http://0x7f.1/",
    "http://127.1/",
    "http://0177.0.0.1/",
    "http://0/",
    "http://0.0.0.0/",
    "http://[::]/",
    "http://[::1]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:7f00:1]/",
    "http://[::ffff:169.254.169.254]/",
    # IPv4-compatible, IPv4-translated and local-use NAT64 spellings, whatever they embed.
    "http://[::127.0.0.1]/",
    "http://[::7f00:1]:8080/",
    "http://[0:0:0:0:0:0:127.0.0.1]/",
    "http://[::10.0.0.1]/",
    "http://[::8.8.8.8]/",
    "http://[::ffff:0:127.0.0.1]/",
    "http://[64:ff9b:1::7f00:1]/",
    "http://[64:ff9b::a9fe:a9fe]/",
    "http://169.254.169.254/latest/meta-data/",
    "http://169.254.169.254./",
    "http://[fd00:ec2::254]/",
    "http://metadata.google.internal/computeMetadata/v1/",
    "http://METADATA.GOOGLE.INTERNAL./",
    "http://[fe80::1]/",
    "http://169.254.1.1/",
    "http://10.0.0.1/",
    "http://172.16.0.1/",
    "http://192.168.1.1/",
    "http://[fc00::1]/",
    "http://100.64.0.1/",
    "http://224.0.0.1/",
    "http://[ff02::1]/",
    "http://user:pass@93.184.215.14/",
    "http://api.example.com@127.0.0.1/",
    "http://127.0.0.1\\@api.example.com/",
    "http://127.0.0.1 /",
    "file:///etc/passwd",
    "gopher://127.0.0.1:6379/_FLUSHALL",
    "ftp://93.184.215.14/",
    "http:///path",
    "not a url",
]


@pytest.mark.parametrize("url", REFUSED)
async def test_unsafe_urls_are_refused(url: str) -> None:
    with pytest.raises(UnsafeUrlError):
        await check_url(url, UrlPolicy())


async def test_names_that_resolve_to_private_addresses_are_refused() -> None:
    name = socket.gethostname()
    addresses = {str(info[4][0]) for info in socket.getaddrinfo(name, None)}
    if not addresses or all(
        not a.startswith(("127.", "10.", "192.168.", "172.")) for a in addresses
    ):
        pytest.skip(f"{name} resolves to {addresses}, none of them local")
    with pytest.raises(UnsafeUrlError, match="resolves to"):
        await check_url(f"http://{name}:8080/v1", UrlPolicy())
    with pytest.raises(UnsafeUrlError, match="does not resolve"):
        await check_url("http://no-such-host.invalid/", UrlPolicy())


async def test_public_addresses_and_allowed_hosts_pass() -> None:
    for url in ("https://93.184.215.14/v1", "http://[2606:4700::1111]:8443/"):
        await check_url(url, UrlPolicy())
    policy = UrlPolicy.from_allow(["127.0.0.1", "10.0.0.0/8", "LLM.internal.", "localhost"])
    for url in (
        "http://127.0.0.1:11434/",
        "http://10.1.2.3/v1",
        "http://llm.internal/v1",
        "http://localhost:8080",
    ):
        await check_url(url, policy)
    with pytest.raises(UnsafeUrlError):
        await check_url("http://169.254.169.254/", policy)
    with pytest.raises(UnsafeUrlError):
        await check_url("http://127.0.0.2/", policy)


@pytest.fixture
async def local_server() -> AsyncIterator[str]:
    async def ok(_: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def redirect(_: web.Request) -> web.Response:
        raise web.HTTPFound("http://169.254.169.254/latest/meta-data/")

    app = web.Application()
    app.router.add_get("/ok", ok)
    app.router.add_get("/redirect", redirect)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"127.0.0.1:{port}"
    await runner.cleanup()


async def test_the_guarded_client_checks_the_address_it_connects_to(local_server: str) -> None:
    port = local_server.rsplit(":", 1)[1]
    async with guarded_client(UrlPolicy(), timeout=5) as client:
        for url in (
            f"http://{local_server}/ok",
            f"http://localhost:{port}/ok",
            f"http://2130706433:{port}/ok",
            f"http://{socket.gethostname()}:{port}/ok",
        ):
            with pytest.raises(httpx.ConnectError, match="refused"):
                await client.get(url)
    async with guarded_client(UrlPolicy.from_allow(["127.0.0.0/8"]), timeout=5) as client:
        response = await client.get(f"http://{local_server}/ok")
        assert response.json() == {"ok": True}
        with pytest.raises(RedirectRefused, match="302"):
            await client.get(f"http://{local_server}/redirect")
        with pytest.raises(RedirectRefused):
            await client.get(f"http://{local_server}/redirect", follow_redirects=True)


def _catalog(base_url: Any) -> CatalogSpec:
    return CatalogSpec.model_validate(
        {"handlers": [{"id": "openai.chat", "params": {"base_url": base_url, "model": "m"}}]}
    )


async def test_catalog_apply_refuses_unsafe_handler_urls(db_pool: asyncpg.Pool[Any]) -> None:
    async with db_pool.acquire() as conn:
        for url in ("http://169.254.169.254/", "http://[::ffff:127.0.0.1]:11434", 42):
            with pytest.raises(UnsafeUrlError, match=r"handler openai\.chat: params\.base_url"):
                await apply_catalog(conn, _catalog(url))
        assert await conn.fetchval("SELECT count(*) FROM handlers") == 0
        await apply_catalog(conn, _catalog("http://127.0.0.1:11434/v1"), ssrf_allow=["127.0.0.1"])
        await apply_catalog(conn, _catalog("https://93.184.215.14/v1"))
        params = await conn.fetchval("SELECT params FROM handlers WHERE id = 'openai.chat'")
        assert params["base_url"] == "https://93.184.215.14/v1"


def test_relai_catalog_apply_refuses_unsafe_urls(relai: Relai, tmp_path: Path) -> None:  # noqa: F811
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(
        "handlers:\n  - id: local.chat\n    params: {base_url: 'http://127.0.0.1:11434/v1'}\n"
    )
    refused = relai("catalog", "apply", str(catalog))
    assert refused.returncode == 1
    assert refused.stderr.startswith("error: refused: handler local.chat: params.base_url:")
    allowed = relai("catalog", "apply", str(catalog), RELAI_SSRF_ALLOW='["127.0.0.1"]')
    assert allowed.returncode == 0, allowed.stderr
