"""A webhook receiver on 127.0.0.1, as an integrator writes one: every delivery is verified with
the two libraries receivers use, ``standardwebhooks`` and the ``openai`` SDK's
``webhooks.unwrap``, unchanged; one that fails either is answered 400. What it answers otherwise
is the test's choice (``answer``); it counts the attempts of each ``webhook-id`` in progress at
once."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from functools import cache

import openai
from aiohttp import web
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.integration.api.conftest import free_port


@dataclass(frozen=True)
class Verdict:
    standard: bool
    openai: bool

    @property
    def both(self) -> bool:
        return self.standard and self.openai


@cache
def _sdk() -> openai.OpenAI:
    """One client for every verification: making one takes a while, and blocks the loop."""
    return openai.OpenAI(api_key="x")


def verify(body: bytes, headers: Mapping[str, str], secret: str) -> Verdict:
    """Both receivers' libraries on one delivery, as they are."""
    try:
        Webhook(secret).verify(body, dict(headers))
        standard = True
    except WebhookVerificationError:
        standard = False
    try:
        _sdk().webhooks.unwrap(body, dict(headers), secret=secret)
        sdk = True
    except openai.InvalidWebhookSignatureError:
        sdk = False
    return Verdict(standard=standard, openai=sdk)


@dataclass(frozen=True)
class Received:
    webhook_id: str
    headers: dict[str, str]
    body: bytes
    at: float
    """``time.monotonic()`` when it arrived."""
    verified: bool


Answer = Callable[[Received], Awaitable[web.StreamResponse]]


async def accept(_: Received) -> web.StreamResponse:
    return web.Response(status=200, text="ok")


@dataclass
class Receiver:
    secrets: list[str] = field(default_factory=list)
    """What the receiver verifies with: a delivery passes when both libraries accept it with
    any one of these."""
    answer: Answer = accept
    port: int = field(default_factory=free_port)
    received: list[Received] = field(default_factory=list)
    rejected: list[Received] = field(default_factory=list)
    max_parallel: Counter[str] = field(default_factory=Counter)
    _active: Counter[str] = field(default_factory=Counter)
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def ids(self) -> list[str]:
        return [r.webhook_id for r in self.received]

    def verified_ids(self) -> set[str]:
        return {r.webhook_id for r in self.received if r.verified}

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        webhook_id = headers.get("webhook-id", "")
        self._active[webhook_id] += 1
        self.max_parallel[webhook_id] = max(self.max_parallel[webhook_id], self._active[webhook_id])
        try:
            verified = any(verify(body, headers, secret).both for secret in self.secrets)
            got = Received(webhook_id, headers, body, time.monotonic(), verified)
            self.received.append(got)
            if not verified:
                self.rejected.append(got)
                return web.Response(status=400, text="signature rejected")
            return await self.answer(got)
        finally:
            self._active[webhook_id] -= 1
