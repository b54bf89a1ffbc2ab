"""A fake media provider: a real local HTTP server (aiohttp) answering as OpenAI's images API
(``/v1/images/generations`` and, multipart, ``/v1/images/edits``; base64 or URLs), as Gemini's
``generateContent`` with image parts (``inlineData``), and as self-hosted model servers that
answer image bytes or base64 in JSON and take JSON or multipart.

The answers follow the providers' documented responses. Every call is recorded with its JSON
body or its multipart fields and files, so that tests check what a handler sent as well as what
it made of the answer. ``script`` queues error answers (``Reply.error``, ``Reply.rate_limited``
from ``tests.fakes.provider``) for the next calls.
"""

import base64
import io
import socket
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web
from PIL import Image

from tests.fakes.provider import Reply


def png(colour: str = "red", size: tuple[int, int] = (4, 3)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, "PNG")
    return out.getvalue()


GENERATED = png("blue")
"""The image every generation answers (``n`` times)."""
EDITED = png("green", (3, 4))
"""The image every edit and every self-hosted server answers."""


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@dataclass(frozen=True)
class Upload:
    filename: str
    content_type: str
    data: bytes


@dataclass
class Call:
    method: str
    path: str
    headers: dict[str, str]
    json: Any = None
    form: dict[str, str] = field(default_factory=dict)
    files: dict[str, list[Upload]] = field(default_factory=dict)


@dataclass
class FakeMedia:
    url: str = ""
    calls: list[Call] = field(default_factory=list)
    files_at: str | None = None
    """Where the image URLs it answers point (default: itself)."""
    _script: deque[Reply] = field(default_factory=deque)

    def script(self, *replies: Reply) -> None:
        self._script.extend(replies)

    def file_url(self, name: str) -> str:
        return f"{self.files_at or self.url}/files/{name}"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        call = await _record(request)
        self.calls.append(call)
        reply = self._script.popleft() if self._script else Reply.ok()
        if reply.kind == "status":
            headers = {"Retry-After": reply.retry_after} if reply.retry_after else {}
            payload = reply.body or {"error": {"message": f"fake {reply.status}"}}
            return web.json_response(payload, status=reply.status, headers=headers)
        path = request.path
        if request.method == "GET" and path.startswith("/files/"):
            return web.Response(body=GENERATED, content_type="image/png")
        if path.endswith("/images/generations"):
            return web.json_response(self._images(call.json, GENERATED))
        if path.endswith("/images/edits"):
            return web.json_response(self._images(call.form, EDITED))
        if ":generateContent" in path:
            return web.json_response(_gemini_answer())
        if path == "/b64":
            return web.json_response({"output": {"image": f"data:image/png;base64,{b64(EDITED)}"}})
        # Any other path: a model server that answers the image's bytes.
        return web.Response(body=EDITED, content_type="image/png")

    def _images(self, asked: Any, image: bytes) -> Any:
        """An OpenAI images answer: ``n`` images, base64 unless ``response_format`` is url."""
        n = int(asked.get("n", 1))
        if asked.get("response_format") == "url":
            data = [{"url": self.file_url(f"img-{i}.png")} for i in range(n)]
        else:
            data = [{"b64_json": b64(image), "revised_prompt": asked.get("prompt")}] * n
        return {
            "created": 1713833628,
            "data": data,
            "output_format": "png",
            "usage": {
                "input_tokens": 50,
                "input_tokens_details": {"image_tokens": 40, "text_tokens": 10},
                "output_tokens": 100 * n,
                "total_tokens": 50 + 100 * n,
            },
        }


def _gemini_answer() -> Any:
    """An image model's answer: a text part, then the image as an ``inlineData`` part."""
    parts = [
        {"text": "Here is your image."},
        {"inlineData": {"mimeType": "image/png", "data": b64(EDITED)}},
    ]
    return {
        "candidates": [
            {"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}
        ],
        "usageMetadata": {
            "promptTokenCount": 12,
            "candidatesTokenCount": 1290,
            "totalTokenCount": 1302,
        },
        "modelVersion": "gemini-2.5-flash-image",
    }


async def _record(request: web.Request) -> Call:
    headers = {k.lower(): v for k, v in request.headers.items()}
    call = Call(request.method, request.path, headers)
    if request.content_type.startswith("multipart/"):
        for name, value in (await request.post()).items():
            if isinstance(value, web.FileField):
                upload = Upload(value.filename, value.content_type, value.file.read())
                call.files.setdefault(name, []).append(upload)
            else:
                call.form[name] = str(value)
    elif raw := await request.read():
        call.json = orjson.loads(raw)
    return call


@asynccontextmanager
async def fake_media() -> AsyncIterator[FakeMedia]:
    """The fake serving on a free local port, in this event loop, until exit."""
    fake = FakeMedia()
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_route("*", "/{tail:.*}", fake.handle)
    runner = web.AppRunner(app, shutdown_timeout=1.0, access_log=None)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    site = web.SockSite(runner, sock)
    await site.start()
    fake.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    try:
        yield fake
    finally:
        await runner.cleanup()
