"""Metrics are for operators: business counters, offer names and recon's top spenders.

The attack: an anonymous client asks the public API port, or recon's or the dispatcher's HTTP
port, for ``/metrics``. None serves any (404 in the one JSON error shape); the real
``relai-api``, ``relai-recon`` and ``relai-dispatcher`` serve them on their operator ports only.
With ``RELAI_METRICS_TOKEN`` set, every metrics endpoint, the API's public ``/metrics`` included,
wants the token (401 without it).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import httpx
import pytest

from libs.accounts import NewUser
from services.cli.launcher import ChildExit, console_script, wait_until_healthy
from tests.integration.api.conftest import Api, auth, free_port, serving, settings_for
from tests.support import ServerUrls, load_demo_catalog

TOKEN = "operators-only-metrics-token"
WITH_TOKEN = {"Authorization": f"Bearer {TOKEN}"}
WRONG_TOKENS: tuple[dict[str, str], ...] = (
    {},
    {"Authorization": "Bearer not-the-metrics-token"},
    {"Authorization": TOKEN},
    {"Authorization": f"Basic {TOKEN}"},
)


def _is_error(r: httpx.Response, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert isinstance(body["detail"], str)
    assert body["code"] == code
    assert "relai_" not in r.text


def _has_metrics(r: httpx.Response, name: str) -> None:
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    assert name in r.text


@asynccontextmanager
async def _process(
    command: list[str], env: dict[str, str], health: str
) -> AsyncIterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)

    def exited() -> ChildExit | None:
        code = process.poll()
        return None if code is None else ChildExit(command[0], code)

    try:
        await asyncio.to_thread(wait_until_healthy, health, timeout=60, exited=exited)
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(process.wait, 15)
        except subprocess.TimeoutExpired:
            process.kill()
            await asyncio.to_thread(process.wait, 5)


def _env(servers: ServerUrls, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": servers.database_url,
        "REDIS_URL": servers.redis_url,
        "RELAI_LOG_LEVEL": "WARNING",
        "RELAI_METRICS_TOKEN": "",
        **extra,
    }


async def test_the_public_api_port_serves_no_metrics(api: Api, alice: NewUser) -> None:
    for headers in ({}, auth(alice), WITH_TOKEN):  # not even to a user, nor to a token unset
        for path in ("/metrics", "/metrics/"):
            _is_error(await api.client.get(path, headers=headers), 404, "not_found")


async def test_with_a_token_the_public_port_serves_metrics_to_it_alone(
    servers: ServerUrls, db_pool: asyncpg.Pool[Any], alice: NewUser
) -> None:
    await load_demo_catalog(db_pool)
    async with serving(settings_for(servers, metrics_token=TOKEN)) as api:
        for headers in (*WRONG_TOKENS, auth(alice)):
            r = await api.client.get("/metrics", headers=headers)
            _is_error(r, 401, "unauthorized")
            assert r.headers["www-authenticate"] == "Bearer"
        _has_metrics(
            await api.client.get("/metrics", headers=WITH_TOKEN), "relai_http_requests_total"
        )


@pytest.mark.parametrize("token", [None, TOKEN], ids=["no-token", "token"])
async def test_relai_api_serves_metrics_on_its_operator_port_only(
    servers: ServerUrls, db_pool: asyncpg.Pool[Any], token: str | None
) -> None:
    await load_demo_catalog(db_pool)
    port, metrics_port = free_port(), free_port()
    env = _env(servers, RELAI_API_METRICS_PORT=str(metrics_port), RELAI_METRICS_TOKEN=token or "")
    public, operator = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{metrics_port}"
    command = [console_script("relai-api"), "--port", str(port)]
    async with (
        _process(command, env, f"{public}/health"),
        httpx.AsyncClient(timeout=10) as client,
    ):
        if token is None:
            _is_error(await client.get(f"{public}/metrics"), 404, "not_found")
            _has_metrics(await client.get(f"{operator}/metrics"), "relai_http_requests_total")
        else:
            for headers in WRONG_TOKENS:
                for url in (f"{public}/metrics", f"{operator}/metrics"):
                    _is_error(await client.get(url, headers=headers), 401, "unauthorized")
            for url in (f"{public}/metrics", f"{operator}/metrics"):
                _has_metrics(await client.get(url, headers=WITH_TOKEN), "relai_http_requests")
        _is_error(await client.get(f"{operator}/", headers=WITH_TOKEN), 404, "not_found")


OPERATOR_PORTS = {
    # service: (its console script, the prefix of its port settings, a series it always has)
    "recon": ("relai-recon", "RELAI_RECON", "relai_recon_sample_success"),
    "dispatcher": ("relai-dispatcher", "RELAI_DISPATCHER", "relai_webhook_in_flight"),
}


@pytest.mark.parametrize("service", list(OPERATOR_PORTS))
@pytest.mark.parametrize("token", [None, TOKEN], ids=["no-token", "token"])
async def test_a_service_serves_metrics_on_its_operator_port_only(
    servers: ServerUrls, token: str | None, service: str
) -> None:
    script, prefix, series = OPERATOR_PORTS[service]
    port, metrics_port = free_port(), free_port()
    env = _env(
        servers,
        **{f"{prefix}_PORT": str(port), f"{prefix}_METRICS_PORT": str(metrics_port)},
        RELAI_METRICS_TOKEN=token or "",
    )
    public, operator = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{metrics_port}"
    async with (
        _process([console_script(script)], env, f"{public}/health"),
        httpx.AsyncClient(timeout=10) as client,
    ):
        for headers in (*WRONG_TOKENS, WITH_TOKEN):
            r = await client.get(f"{public}/metrics", headers=headers)
            assert r.status_code == 404
            assert "relai_" not in r.text
        if token is None:
            _has_metrics(await client.get(f"{operator}/metrics"), series)
        else:
            for headers in WRONG_TOKENS:
                _is_error(
                    await client.get(f"{operator}/metrics", headers=headers), 401, "unauthorized"
                )
            _has_metrics(await client.get(f"{operator}/metrics", headers=WITH_TOKEN), series)
