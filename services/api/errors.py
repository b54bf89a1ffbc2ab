"""Domain errors carry their HTTP status; one handler turns them into JSON.

Every error has one shape, ``{"detail", "code", ...}``, except under ``/v1/``, the
OpenAI-compatible door, where the same error is written the way OpenAI's clients parse it:
``{"error": {"message", "type", "param", "code"}}``, with ``retry-after-ms`` beside
``Retry-After`` (``error_response``)."""

from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.routing import Match

from libs.logs import get_logger
from services.api.text import printable

log = get_logger(__name__)


class RelaiError(Exception):
    status_code = 400
    code = "bad_request"

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra
        self.headers: dict[str, str] | None = None


class BadRequest(RelaiError):
    status_code, code = 400, "bad_request"


class Unauthorized(RelaiError):
    status_code, code = 401, "unauthorized"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.headers = {"WWW-Authenticate": "Bearer"}


class InsufficientCredits(RelaiError):
    status_code, code = 402, "insufficient_credits"


class Forbidden(RelaiError):
    status_code, code = 403, "forbidden"


class NotFound(RelaiError):
    status_code, code = 404, "not_found"


class Conflict(RelaiError):
    status_code, code = 409, "conflict"


class TooLarge(RelaiError):
    status_code, code = 413, "too_large"


class InvalidInputs(RelaiError):
    status_code, code = 422, "invalid_inputs"


class TooManyRequests(RelaiError):
    status_code, code = 429, "too_many_requests"

    def __init__(self, message: str, *, retry_after: int, **extra: Any) -> None:
        super().__init__(message, retry_after=retry_after, **extra)
        self.headers = {"Retry-After": str(retry_after)}


OPENAI_PREFIX = "/v1/"

_OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "insufficient_quota",
    403: "permission_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    408: "timeout_error",
    409: "conflict_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


def error_response(
    request: Request,
    status: int,
    detail: str,
    code: str,
    *,
    extra: dict[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
    param: str | None = None,
) -> JSONResponse:
    """The one error answer: ``{"detail", "code", **extra}``, or, under ``/v1/``, OpenAI's
    ``{"error": {"message", "type", "param", "code", **extra}}``."""
    if not request.url.path.startswith(OPENAI_PREFIX):
        return JSONResponse(
            {"detail": detail, "code": code, **(extra or {})}, status_code=status, headers=headers
        )
    kind = _OPENAI_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    error = {"message": detail, "type": kind, "param": param, "code": code, **(extra or {})}
    headers = dict(headers or {})
    retry_after = headers.get("Retry-After")
    if retry_after is not None and retry_after.isdigit():
        headers["retry-after-ms"] = str(int(retry_after) * 1000)
    return JSONResponse({"error": error}, status_code=status, headers=headers)


async def relai_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RelaiError)
    extra = dict(exc.extra)
    param = extra.pop("param", None)
    return error_response(
        request,
        exc.status_code,
        exc.message,
        exc.code,
        extra=extra,
        headers=exc.headers,
        param=param if isinstance(param, str) else None,
    )


def _where(loc: Sequence[Any]) -> str:
    """``("body", "inputs", "text")`` as ``inputs.text``; a query or path parameter keeps its
    kind: ``query offset``."""
    kind, *rest = loc or ("body",)
    path = ".".join(str(part) for part in rest)
    if kind == "body":
        return path or "body"
    return f"{kind} {path}" if path else str(kind)


UNAVAILABLE = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
)
"""What Postgres being down or unreachable looks like to the API."""


async def unavailable_handler(request: Request, exc: Exception) -> JSONResponse:
    """Postgres unreachable: the call had no effect (its transaction never committed), so the
    client is told to retry rather than shown a 500."""
    log.warning("database unavailable", error=repr(exc))
    return error_response(
        request,
        503,
        "the database is unavailable; nothing was done, retry",
        "unavailable",
        headers={"Retry-After": "1"},
    )


HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
}


async def http_error_handler(request: Request, exc: Exception) -> Response:
    """Starlette's and FastAPI's own errors (unknown path, wrong method, body too large) in the
    same shape as ours."""
    assert isinstance(exc, HTTPException)
    if exc.status_code in (204, 304) or exc.status_code < 200:
        return Response(status_code=exc.status_code, headers=exc.headers)
    headers = exc.headers
    if exc.status_code == 405:
        headers = {**(headers or {}), "Allow": _allowed_methods(request)}
    return error_response(
        request,
        exc.status_code,
        str(exc.detail),
        HTTP_CODES.get(exc.status_code, "http_error"),
        headers=headers,
    )


_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def _allowed_methods(request: Request) -> str:
    """Every method some route takes at the request's path. (The router names those of the
    first route matching the path only, when several share it: ``GET`` and ``POST /users``.)"""
    routes = request.app.router.routes
    return ", ".join(
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes
        )
    )


MAX_ERRORS = 20
"""The most validation errors listed; ``more`` counts the rest."""
MAX_TEXT = 200
"""The most characters of an error's message or of a part of its location."""


def _clip(value: Any) -> Any:
    if isinstance(value, str) and len(value) > MAX_TEXT:
        return value[:MAX_TEXT] + "..."
    return value if isinstance(value, int | str) else _clip(str(value))


async def validation_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """A request pydantic refused, in the one error shape: ``detail`` and ``errors`` name each
    field and its problem, never the input (pydantic's ``input`` and ``ctx``: it may be huge, or
    text no JSON encoder can write); at most ``MAX_ERRORS`` are listed, each text clipped, so
    the answer stays small whatever the body."""
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    shown = errors[:MAX_ERRORS]
    problems = [(_where(e.get("loc", ())), str(e.get("msg", ""))) for e in shown]
    body: dict[str, Any] = {
        "detail": _clip("; ".join(printable(f"{where}: {msg}") for where, msg in problems))
        or "invalid request",
        "code": InvalidInputs.code,
        "fields": list(dict.fromkeys(_clip(printable(where)) for where, _ in problems)),
        "errors": [
            {
                "loc": [_clip(printable(p) if isinstance(p, str) else p) for p in e["loc"]],
                "msg": _clip(printable(str(e.get("msg", "")))),
                "type": _clip(str(e.get("type", ""))),
            }
            for e in shown
        ],
    }
    if len(errors) > MAX_ERRORS:
        body["more"] = len(errors) - MAX_ERRORS
    if request.url.path.startswith(OPENAI_PREFIX):
        # OpenAI answers a body that does not fit the call with 400, naming the first field.
        detail, code = body.pop("detail"), body.pop("code")
        body.pop("fields")
        param = _clip(printable(problems[0][0])) if problems else None
        return error_response(request, 400, detail, code, extra=body, param=param)
    return JSONResponse(body, status_code=InvalidInputs.status_code)


CLIENT_CLOSED_REQUEST = 499
"""The status of an answer no one waits for any more (nginx's "client closed request")."""


async def client_disconnect_handler(_: Request, exc: Exception) -> Response:
    """The client left while its request was read: nothing to answer and nothing went wrong
    here, so no 500 and no error logged; the metrics count it as 499."""
    assert isinstance(exc, ClientDisconnect)
    return Response(status_code=CLIENT_CLOSED_REQUEST)


async def internal_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """Anything unexpected: the traceback goes to the log, the client gets a generic 500 that
    names nothing of the code."""
    log.error("unhandled error", method=request.method, path=request.url.path, exc_info=exc)
    return error_response(request, 500, "internal error", "internal_error")
