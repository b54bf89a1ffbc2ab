"""What every HTTP answer gets before the app sees the request: one trailing slash stripped from
the path (so ``/svc/a/b/`` is ``/svc/a/b``, answered in place: no redirect, whose ``location``
would echo the ``Host`` header), a body declared larger than the limit refused at once (JSON
413: the larger limit of ``multipart/form-data`` bodies where files are taken, the plain one
everywhere else), and the security headers and an ``x-request-id`` (unless the app set one: a
support case names it, and OpenAI's clients show it) appended to the answer.

One pure ASGI layer, outside every other (errors answered by the server-error handler included):
the submit path is hot, so the work per request is a string check and one list append.

The request body's limits are three, each where it can act: its declared length, checked here;
the bytes that arrive without one, counted by FastAPI's ``max_body_size`` (the app's, raised on
the routes that take files: ``services.api.api``); and what is read whole as JSON, counted by
``read_limited``.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re

import orjson
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.api.errors import TooLarge

SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
)
TOO_LARGE_BODY = orjson.dumps({"detail": "the request body is too large", "code": "too_large"})


MULTIPART = b"multipart/form-data"


def takes_files(method: str, path: str) -> bool:
    """Whether a call may carry files (a ``multipart/form-data`` body up to the larger limit):
    ``POST /files`` and a submission to an offer, ``POST /svc/{service}/{action}``."""
    if method != "POST":
        return False
    if path == "/files":
        return True
    return (
        path.startswith("/svc/")
        and path.count("/") == 3
        and not path.startswith(("/svc/request/", "/svc/requests/"))
    )


class Hardening:
    def __init__(
        self, app: ASGIApp, *, max_body_bytes: int | None, multipart_max_bytes: int | None = None
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.multipart_max_bytes = multipart_max_bytes
        """The limit of a ``multipart/form-data`` body where files are taken (``takes_files``);
        None: the plain one."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if len(path) > 1 and path[-1] == "/":
            scope = dict(scope, path=path[:-1])
            raw = scope.get("raw_path")
            if raw and raw[-1:] == b"/":
                scope["raw_path"] = raw[:-1]
        if kind == "websocket":
            await self.app(scope, receive, send)
            return

        async def send_hardened(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", ()), *SECURITY_HEADERS]
                if not any(name == b"x-request-id" for name, _ in headers):
                    headers.append((b"x-request-id", new_request_id()))
                message["headers"] = headers
            await send(message)

        if self.max_body_bytes is not None and self._declared_too_large(scope):
            await _too_large(send_hardened)
            return
        await self.app(scope, receive, send_hardened)

    def _declared_too_large(self, scope: Scope) -> bool:
        """A ``content-length`` over the limit: refused here, before the app reads anything
        (FastAPI's own limit counts the bytes of a body that declares no length)."""
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    return False
                if declared <= (self.max_body_bytes or 0):
                    return False
                return not self._multipart_within(scope, declared)
        return False

    def _multipart_within(self, scope: Scope, declared: int) -> bool:
        """A ``multipart/form-data`` body of ``declared`` bytes that a call taking files
        takes (looked at only past the plain limit: never on the hot path)."""
        if self.multipart_max_bytes is None or declared > self.multipart_max_bytes:
            return False
        if not takes_files(scope["method"], scope["path"]):
            return False
        return any(
            name == b"content-type" and value.lower().startswith(MULTIPART)
            for name, value in scope["headers"]
        )


async def read_limited(request: Request, limit: int) -> bytes:
    """The whole body of a call whose route allows more (one that takes files, sent another
    body), held to ``limit`` as it arrives: 413 past it."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise TooLarge("the request body is too large")
    return bytes(body)


def new_request_id() -> bytes:
    """A call's id (not a Relai request's): unique, not secret."""
    return b"req_" + os.urandom(12).hex().encode()


async def _too_large(send: Send) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(TOO_LARGE_BODY)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": TOO_LARGE_BODY})


DOCS_SOURCES = {
    # Swagger UI and ReDoc, their scripts, styles and favicon served by the API itself
    # (/docs/assets); both fetch /openapi.json, ReDoc's search runs in a worker made from a blob.
    "script": "'self'",
    "style": "'self'",
    "img": "'self' data:",
}
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)
_INLINE_STYLE = re.compile(r"<style>(.*?)</style>", re.DOTALL)
_EMPTY_STYLE = ""
"""ReDoc's styled-components add an empty ``<style>`` element, then fill it through the CSSOM,
which the policy does not restrict: the hash of the empty text allows that element only."""


def _hashes(bodies: list[str]) -> str:
    return "".join(
        " 'sha256-" + base64.b64encode(hashlib.sha256(body.encode()).digest()).decode() + "'"
        for body in dict.fromkeys(bodies)
    )


def docs_csp(html: str) -> str:
    """The Content-Security-Policy of a documentation page: this origin and nothing else; its
    inline scripts and styles are allowed by their hash, never by ``'unsafe-inline'``."""
    scripts = _INLINE_SCRIPT.findall(html)
    styles = [*_INLINE_STYLE.findall(html), _EMPTY_STYLE]
    return "; ".join(
        (
            "default-src 'none'",
            f"script-src {DOCS_SOURCES['script']}{_hashes(scripts)}",
            f"style-src {DOCS_SOURCES['style']}{_hashes(styles)}",
            f"img-src {DOCS_SOURCES['img']}",
            "connect-src 'self'",
            "worker-src blob:",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        )
    )
