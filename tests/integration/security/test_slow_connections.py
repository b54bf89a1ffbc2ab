"""Slow clients cannot hold the API's connections: the real ``relai-api`` process (uvloop,
httptools), with short header and body timeouts, cuts off many slowloris connections (request
headers a line at a time) and slow bodies (a byte at a time) within their timeout, while other
clients are served meanwhile."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from websockets.asyncio.client import connect

from libs.accounts import NewUser
from services.cli.launcher import console_script, wait_until_healthy
from tests.integration.api.conftest import auth, free_port
from tests.support import ServerUrls, create_user, load_demo_catalog

HEADER_TIMEOUT_S = 1.0
BODY_TIMEOUT_S = 2.0
MARGIN_S = 2.0
"""Late cut-offs tolerated: thousands of connections are opened and served at once."""
ATTACKERS = 1_500
"""Connections of each kind, as many as the attack the bounds answer held open."""
TRICKLE_S = 0.25
"""How often a slow client sends its next piece: often enough that no idle timeout fires."""


@dataclass
class SlowApi:
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
async def slow_api(servers: ServerUrls, tmp_path: Path) -> AsyncIterator[SlowApi]:
    """``relai-api`` as users start it, with 1 s to send headers and 2 s to send a body."""
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": servers.database_url,
        "REDIS_URL": servers.redis_url,
        "RELAI_HEADER_TIMEOUT_S": str(HEADER_TIMEOUT_S),
        "RELAI_BODY_TIMEOUT_S": str(BODY_TIMEOUT_S),
        "RELAI_LOG_LEVEL": "WARNING",
        "RELAI_API_METRICS_PORT": "0",  # tests run side by side
    }
    log = tmp_path / "api.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [console_script("relai-api"), "--port", str(port)],
            env=env,
            stdout=out,
            stderr=out,
            process_group=0,
        )
    try:
        await asyncio.to_thread(
            wait_until_healthy,
            f"http://127.0.0.1:{port}/health",
            timeout=60,
            exited=lambda: None,
        )
        yield SlowApi(port=port, log=log)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            await asyncio.to_thread(process.wait, 15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture
async def user(db_pool: asyncpg.Pool[Any]) -> NewUser:
    await load_demo_catalog(db_pool)
    return await create_user(db_pool, name="legit", credits=1_000)


@dataclass
class Held:
    """How long after it opened the server closed a connection, and what it had sent."""

    seconds: float
    received: bytes

    @property
    def status(self) -> int | None:
        if not self.received.startswith(b"HTTP/1.1 "):
            return None
        return int(self.received[9:12])

    @property
    def body(self) -> Any:
        return orjson.loads(self.received.partition(b"\r\n\r\n")[2])

    def header(self, name: bytes) -> bytes | None:
        head = self.received.partition(b"\r\n\r\n")[0]
        for line in head.split(b"\r\n")[1:]:
            key, _, value = line.partition(b":")
            if key.strip().lower() == name:
                return value.strip()
        return None


async def _hold(port: int, pieces: Iterable[bytes], *, first: bytes = b"") -> Held:
    """Open a connection, send ``first`` at once and then ``pieces`` one every ``TRICKLE_S``
    until the server closes it (or the deadline of the slowest cut-off passes)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    opened = time.monotonic()

    async def trickle() -> None:
        try:
            if first:
                writer.write(first)
            for piece in pieces:
                await asyncio.sleep(TRICKLE_S)
                writer.write(piece)
                await writer.drain()
        except ConnectionError:
            pass

    async def until_closed() -> bytes:
        received = b""
        try:
            while chunk := await reader.read(65536):
                received += chunk
        except ConnectionResetError:
            pass  # closed with the client's trickle unread: a reset, not a FIN
        return received

    sender = asyncio.create_task(trickle())
    try:
        received = await asyncio.wait_for(until_closed(), BODY_TIMEOUT_S + 3 * MARGIN_S)
        return Held(time.monotonic() - opened, received)
    finally:
        sender.cancel()
        writer.close()


SlowRequest = tuple[bytes, Iterable[bytes]]
"""What a slow client sends at once, then the pieces it trickles."""


def _slow_headers(path: str = "/health") -> SlowRequest:
    """A request line, then one more header line every ``TRICKLE_S``, never the blank line."""
    return f"GET {path} HTTP/1.1\r\nHost: api\r\n".encode(), itertools.repeat(b"X-Slow: 1\r\n")


def _slow_body(path: str, headers: dict[str, str] | None = None) -> SlowRequest:
    """Complete headers announcing 1,000 bytes, then one byte every ``TRICKLE_S``."""
    lines = [
        f"POST {path} HTTP/1.1",
        "Host: api",
        "Content-Type: application/json",
        "Content-Length: 1000",
        *(f"{name}: {value}" for name, value in (headers or {}).items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode(), itertools.repeat(b" ", 999)


def _attack(port: int, request: Callable[[], SlowRequest], n: int) -> list[asyncio.Task[Held]]:
    """``n`` connections at once, each sending its own ``request()`` slowly."""
    tasks = []
    for _ in range(n):
        first, pieces = request()
        tasks.append(asyncio.create_task(_hold(port, pieces, first=first)))
    return tasks


def _cut_off_within(held: list[Held], timeout_s: float) -> None:
    """Every connection was closed by the server once ``timeout_s`` had passed, not before, and
    not much later."""
    seconds = sorted(h.seconds for h in held)
    assert seconds[0] >= timeout_s - 0.05, seconds[:5]
    assert seconds[-1] <= timeout_s + MARGIN_S, seconds[-5:]


async def _served_meanwhile(api: SlowApi, user: NewUser, attack: list[asyncio.Task[Held]]) -> None:
    """A client with a key is served while every attacking connection is still held."""
    async with httpx.AsyncClient(base_url=api.url, timeout=5) as client:
        health = await client.get("/health")
        submitted = await client.post("/svc/demo/echo", json={"text": "hi"}, headers=auth(user))
    assert health.status_code == 200, health.text
    assert submitted.status_code == 202, submitted.text
    assert not any(task.done() for task in attack), "the attack ended before the check"


async def test_slowloris_connections_are_cut_off_while_others_are_served(
    slow_api: SlowApi, user: NewUser
) -> None:
    attack = _attack(slow_api.port, _slow_headers, ATTACKERS)
    await asyncio.sleep(0.3)
    await _served_meanwhile(slow_api, user, attack)
    held = await asyncio.gather(*attack)
    _cut_off_within(held, HEADER_TIMEOUT_S)
    # Each request had begun and nothing else was being answered: a 408, then the close.
    assert {h.status for h in held} == {408}
    assert held[0].body == {
        "detail": "the request was not received in time",
        "code": "request_timeout",
    }
    assert held[0].header(b"connection") == b"close"
    assert held[0].header(b"x-content-type-options") == b"nosniff"


async def test_slow_bodies_are_cut_off_while_others_are_served(
    slow_api: SlowApi, user: NewUser
) -> None:
    # Without credentials: /ask reads its body before it checks the key (408), the offer path
    # after (401 at once, then the rest of the body is awaited no longer than the timeout).
    ask = _attack(slow_api.port, partial(_slow_body, "/ask"), ATTACKERS // 2)
    offer = _attack(slow_api.port, partial(_slow_body, "/svc/demo/echo"), ATTACKERS // 2)
    # With a key, on the offer path: the body is awaited, then cut off.
    keyed = _attack(slow_api.port, partial(_slow_body, "/svc/demo/echo", auth(user)), 10)
    await asyncio.sleep(0.5)
    await _served_meanwhile(slow_api, user, [*ask, *offer, *keyed])
    for tasks, status, code in (
        (ask, 408, "request_timeout"),
        (offer, 401, "unauthorized"),
        (keyed, 408, "request_timeout"),
    ):
        held = await asyncio.gather(*tasks)
        _cut_off_within(held, BODY_TIMEOUT_S)
        assert {(h.status, h.body["code"]) for h in held} == {(status, code)}
    # Cutting a body short is no server error.
    log = slow_api.log.read_text()
    assert "unhandled error" not in log
    assert "Exception in ASGI application" not in log


async def test_a_connection_that_sends_nothing_is_closed_without_an_answer(
    slow_api: SlowApi,
) -> None:
    held = await asyncio.gather(*_attack(slow_api.port, lambda: (b"", iter(())), 100))
    _cut_off_within(held, HEADER_TIMEOUT_S)
    assert {h.received for h in held} == {b""}


async def test_each_request_of_a_kept_alive_connection_has_its_own_deadline(
    slow_api: SlowApi,
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", slow_api.port)
    try:
        for _ in range(3):  # more time in all than one deadline: each request starts its own
            writer.write(b"GET /health HTTP/1.1\r\nHost: api\r\n")
            await asyncio.sleep(HEADER_TIMEOUT_S / 2)
            writer.write(b"\r\n")
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert head.startswith(b"HTTP/1.1 200"), head
            length = next(
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length")
            )
            await reader.readexactly(length)
        began = time.monotonic()
        writer.write(b"GET /health HTTP/1.1\r\n")
        rest = await asyncio.wait_for(reader.read(), HEADER_TIMEOUT_S + MARGIN_S)
        assert HEADER_TIMEOUT_S - 0.05 <= time.monotonic() - began <= HEADER_TIMEOUT_S + MARGIN_S
        assert rest.startswith(b"HTTP/1.1 408")
    finally:
        writer.close()


async def test_clients_within_the_deadlines_and_open_websockets_are_not_cut_off(
    slow_api: SlowApi, user: NewUser
) -> None:
    first, _ = _slow_body("/svc/demo/echo", auth(user))
    body = b'{"text": "slow but in time"}'
    first = first.replace(b"Content-Length: 1000", f"Content-Length: {len(body)}".encode())
    reader, writer = await asyncio.open_connection("127.0.0.1", slow_api.port)
    try:
        half = len(first) // 2
        writer.write(first[:half])
        await asyncio.sleep(HEADER_TIMEOUT_S * 0.6)
        writer.write(first[half:])
        for byte in range(len(body)):
            await asyncio.sleep(BODY_TIMEOUT_S * 0.6 / len(body))
            writer.write(body[byte : byte + 1])
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 202"), head
    finally:
        writer.close()
    # A WebSocket outlives both deadlines: the upgrade ends the HTTP protocol's timers.
    async with connect(f"ws://127.0.0.1:{slow_api.port}/ws", additional_headers=auth(user)) as ws:
        snapshot = orjson.loads(await asyncio.wait_for(ws.recv(), 5))
        assert snapshot["status"] == "pending"
        await asyncio.sleep(HEADER_TIMEOUT_S + BODY_TIMEOUT_S + 0.5)
        pong = await ws.ping()
        await asyncio.wait_for(pong, 5)
