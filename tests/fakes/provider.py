"""A fake AI provider: a real local HTTP server (aiohttp) speaking the wire formats of OpenAI
chat completions and embeddings, Gemini ``generateContent``, Anthropic messages and a plain JSON
model server, with or without server-sent events.

Each test scripts what the next calls get (``fake.script(Reply.rate_limited(1), Reply.ok())``);
once the script is used up every call succeeds. The answer to a prompt is ``echo: <prompt>``,
its usage one token per word. The server records every call and the most calls in flight at once.
"""

import asyncio
import socket
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
from aiohttp import web

Kind = Literal["ok", "status", "malformed", "slow", "hang", "stream_error"]


@dataclass(frozen=True)
class Reply:
    kind: Kind = "ok"
    status: int = 200
    retry_after: str | None = None
    delay_s: float = 0.0
    body: Any = None

    @classmethod
    def ok(cls, *, delay_s: float = 0.0) -> "Reply":
        """Success; ``delay_s`` before the headers."""
        return cls("ok", delay_s=delay_s)

    @classmethod
    def rate_limited(cls, retry_after: float | str | None = None) -> "Reply":
        return cls("status", 429, None if retry_after is None else str(retry_after))

    @classmethod
    def error(cls, status: int = 500, body: Any = None) -> "Reply":
        return cls("status", status, body=body)

    @classmethod
    def malformed(cls) -> "Reply":
        """200 with a body that is not JSON (or, streaming, an event that is not)."""
        return cls("malformed")

    @classmethod
    def slow(cls, delay_s: float) -> "Reply":
        """Headers at once, then the body (or each event) ``delay_s`` apart."""
        return cls("slow", delay_s=delay_s)

    @classmethod
    def hang(cls) -> "Reply":
        """Never answers (until the server stops)."""
        return cls("hang")

    @classmethod
    def stream_error(cls) -> "Reply":
        """Streaming: the first piece of the answer, then the connection drops."""
        return cls("stream_error")


@dataclass
class Call:
    path: str
    query: str
    headers: dict[str, str]
    body: Any
    at: float = field(default_factory=time.monotonic)
    """When it arrived (``time.monotonic``)."""


@dataclass
class FakeProvider:
    url: str = ""
    calls: list[Call] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    dead: bool = False
    """Killed (``kill``): it answers nothing, dropping every connection."""
    dropped: int = 0
    """Requests that came, on a connection opened before, while it was dead."""
    _script: deque[Reply] = field(default_factory=deque)
    _closing: asyncio.Event = field(default_factory=asyncio.Event)
    _runner: web.AppRunner | None = None
    _site: web.SockSite | None = None
    _open: set[asyncio.Transport] = field(default_factory=set)
    """The connections of the requests in flight."""

    def script(self, *replies: Reply) -> None:
        self._script.extend(replies)

    async def _pause(self, delay_s: float) -> None:
        """Sleep, but not past the server's shutdown."""
        try:
            await asyncio.wait_for(self._closing.wait(), delay_s)
        except TimeoutError:
            pass

    async def kill(self) -> None:
        """Die as a killed server does: stop listening, and drop the connections of the requests
        in flight without an answer (and any other as soon as a request comes on it)."""
        self.dead = True
        if self._site is not None:
            await self._site.stop()
            self._site = None
        for transport in list(self._open):
            transport.abort()

    async def restart(self) -> None:
        """Listen again on the same port, answering as before."""
        assert self._runner is not None
        assert self._site is None
        self.dead = False
        self._site = await _listen(self._runner, int(self.url.rsplit(":", 1)[1]))

    def _next(self) -> Reply:
        return self._script.popleft() if self._script else Reply.ok()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        transport = request.transport
        assert transport is not None
        if self.dead:
            self.dropped += 1
            transport.abort()
            return web.Response(status=503)
        self._open.add(transport)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            raw = await request.read()
            body = orjson.loads(raw) if raw else None
            self.calls.append(
                Call(
                    request.path,
                    request.query_string,
                    {k.lower(): v for k, v in request.headers.items()},
                    body,
                )
            )
            return await self._answer(request, body, self._next())
        finally:
            self.in_flight -= 1
            self._open.discard(transport)

    async def _answer(self, request: web.Request, body: Any, reply: Reply) -> web.StreamResponse:
        if reply.kind == "hang":
            await self._closing.wait()
            return web.Response(status=503)
        if reply.kind == "status":
            headers = {"Retry-After": reply.retry_after} if reply.retry_after else {}
            payload = reply.body or {"error": {"message": f"fake {reply.status}"}}
            return web.json_response(payload, status=reply.status, headers=headers)
        if reply.kind == "ok" and reply.delay_s:
            await self._pause(reply.delay_s)
        wire = _WIRES[_route(request.path)]
        prompt = wire.prompt(body)
        text = f"echo: {prompt}"
        qty = wire.qty(body)
        if _streaming(request, body):
            return await self._stream(request, wire.events(text, prompt, qty), reply)
        if reply.kind == "malformed":
            return web.Response(text='{"choices": [', content_type="application/json")
        data = orjson.dumps(wire.answer(text, prompt, qty))
        if reply.kind != "slow":
            return web.Response(body=data, content_type="application/json")
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        for i in range(0, len(data), max(1, len(data) // 3)):
            await self._pause(reply.delay_s)
            await response.write(data[i : i + max(1, len(data) // 3)])
        await response.write_eof()
        return response

    async def _stream(
        self, request: web.Request, events: list[tuple[str | None, Any]], reply: Reply
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for i, (name, data) in enumerate(events):
            if reply.kind == "slow":
                await self._pause(reply.delay_s)
            if reply.kind == "stream_error" and i == 2:
                assert request.transport is not None
                request.transport.close()
                return response
            payload = b"{not json" if reply.kind == "malformed" else _json(data)
            head = f"event: {name}\n".encode() if name else b""
            await response.write(head + b"data: " + payload + b"\n\n")
        await response.write_eof()
        return response


def _json(data: Any) -> bytes:
    return data.encode() if isinstance(data, str) else orjson.dumps(data)


def _streaming(request: web.Request, body: Any) -> bool:
    return request.query.get("alt") == "sse" or (
        isinstance(body, dict) and bool(body.get("stream"))
    )


def _words(text: str) -> list[str]:
    words = text.split(" ")
    return [w if i == 0 else f" {w}" for i, w in enumerate(words)]


def _tokens(text: str) -> int:
    return len(text.split())


@dataclass(frozen=True)
class _Wire:
    prompt: Callable[[Any], str]
    qty: Callable[[Any], int]
    answer: Callable[[str, str, int], Any]
    events: Callable[[str, str, int], list[tuple[str | None, Any]]]


def _openai_answer(text: str, prompt: str, qty: int) -> Any:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "choices": [
            {
                "index": i,
                "message": {"role": "assistant", "content": f"{text} #{i}" if qty > 1 else text},
                "finish_reason": "stop",
            }
            for i in range(qty)
        ],
        "usage": {
            "prompt_tokens": _tokens(prompt),
            "completion_tokens": _tokens(text) * qty,
            "total_tokens": _tokens(prompt) + _tokens(text) * qty,
        },
    }


def _openai_events(text: str, prompt: str, qty: int) -> list[tuple[str | None, Any]]:
    events: list[tuple[str | None, Any]] = []
    for word in _words(text):
        choices = [{"index": i, "delta": {"content": word}} for i in range(qty)]
        events.append((None, {"object": "chat.completion.chunk", "choices": choices}))
    usage = {"prompt_tokens": _tokens(prompt), "completion_tokens": _tokens(text) * qty}
    events.append((None, {"object": "chat.completion.chunk", "choices": [], "usage": usage}))
    events.append((None, "[DONE]"))
    return events


def _openai_prompt(body: Any) -> str:
    return str(body["messages"][-1]["content"])


def _embedding_answer(text: str, prompt: str, qty: int) -> Any:
    vector = [round(len(prompt) / 100, 2), 0.5, -0.25]
    return {
        "object": "list",
        "data": [{"object": "embedding", "index": 0, "embedding": vector}],
        "usage": {"prompt_tokens": _tokens(prompt), "total_tokens": _tokens(prompt)},
    }


def _gemini_prompt(body: Any) -> str:
    return str(body["contents"][-1]["parts"][0]["text"])


def _gemini_qty(body: Any) -> int:
    return int((body.get("generationConfig") or {}).get("candidateCount", 1))


def _gemini_usage(text: str, prompt: str, qty: int) -> dict[str, int]:
    return {"promptTokenCount": _tokens(prompt), "candidatesTokenCount": _tokens(text) * qty}


def _gemini_answer(text: str, prompt: str, qty: int) -> Any:
    candidates = [
        {
            "index": i,
            "content": {"role": "model", "parts": [{"text": f"{text} #{i}" if qty > 1 else text}]},
            "finishReason": "STOP",
        }
        for i in range(qty)
    ]
    return {"candidates": candidates, "usageMetadata": _gemini_usage(text, prompt, qty)}


def _gemini_events(text: str, prompt: str, qty: int) -> list[tuple[str | None, Any]]:
    events: list[tuple[str | None, Any]] = []
    for word in _words(text):
        candidates = [
            {"index": i, "content": {"role": "model", "parts": [{"text": word}]}}
            for i in range(qty)
        ]
        events.append((None, {"candidates": candidates}))
    events.append((None, {"candidates": [], "usageMetadata": _gemini_usage(text, prompt, qty)}))
    return events


def _anthropic_prompt(body: Any) -> str:
    return str(body["messages"][-1]["content"])


def _anthropic_answer(text: str, prompt: str, qty: int) -> Any:
    return {
        "id": "msg_fake",
        "type": "message",
        "role": "assistant",
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": _tokens(prompt), "output_tokens": _tokens(text)},
    }


def _anthropic_events(text: str, prompt: str, qty: int) -> list[tuple[str | None, Any]]:
    start = {
        "type": "message_start",
        "message": {
            "id": "msg_fake",
            "usage": {"input_tokens": _tokens(prompt), "output_tokens": 1},
        },
    }
    events: list[tuple[str | None, Any]] = [("message_start", start)]
    block = {
        "type": "content_block_start",
        "index": 0,
        "content_block": {"type": "text", "text": ""},
    }
    events.append(("content_block_start", block))
    for word in _words(text):
        delta = {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": word},
        }
        events.append(("content_block_delta", delta))
    events.append(("content_block_stop", {"type": "content_block_stop", "index": 0}))
    usage = {"output_tokens": _tokens(text)}
    events.append(("message_delta", {"type": "message_delta", "delta": {}, "usage": usage}))
    events.append(("message_stop", {"type": "message_stop"}))
    return events


def _predict_answer(text: str, prompt: str, qty: int) -> Any:
    return {"outputs": [{"text": text}], "meta": {"in": _tokens(prompt), "out": _tokens(text)}}


_WIRES = {
    "chat": _Wire(_openai_prompt, lambda b: int(b.get("n", 1)), _openai_answer, _openai_events),
    "embeddings": _Wire(lambda b: str(b["input"]), lambda b: 1, _embedding_answer, lambda *_: []),
    "gemini": _Wire(_gemini_prompt, _gemini_qty, _gemini_answer, _gemini_events),
    "anthropic": _Wire(_anthropic_prompt, lambda b: 1, _anthropic_answer, _anthropic_events),
    "predict": _Wire(
        lambda b: str(b["inputs"]["text"]), lambda b: 1, _predict_answer, lambda *_: []
    ),
}


def _route(path: str) -> str:
    if path.endswith("/chat/completions"):
        return "chat"
    if path.endswith("/embeddings"):
        return "embeddings"
    if ":generateContent" in path or ":streamGenerateContent" in path:
        return "gemini"
    if path.endswith("/v1/messages"):
        return "anthropic"
    return "predict"


@asynccontextmanager
async def fake_provider() -> AsyncIterator[FakeProvider]:
    """The fake provider serving on a free local port, in this event loop, until exit."""
    fake = FakeProvider()
    app = web.Application()
    handle: Callable[[web.Request], Awaitable[web.StreamResponse]] = fake.handle
    app.router.add_route("POST", "/{tail:.*}", handle)
    runner = web.AppRunner(app, shutdown_timeout=1.0, access_log=None)
    await runner.setup()
    fake._runner = runner
    fake._site = await _listen(runner, 0)
    fake.url = fake._site.name
    try:
        yield fake
    finally:
        fake._closing.set()
        await runner.cleanup()


async def _listen(runner: web.AppRunner, port: int) -> web.SockSite:
    # Bound here, before anyone else can pick the same free port; reusable once killed.
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    site = web.SockSite(runner, sock, backlog=2048)
    await site.start()
    return site
