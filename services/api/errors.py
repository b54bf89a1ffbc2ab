"""Domain errors carry their HTTP status; one handler turns them into JSON.

Every error has one shape, ``{"detail", "code", ...}``, except under ``/v1/``, the
OpenAI-compatible door, where the same error is written the way OpenAI's clients parse it:
``{"error": {"message", "type", "param", "code"}}``, with ``retry-after-ms`` beside
``Retry-After`` (``error_response``)."""

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import asyncpg
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict
from pydantic.json_schema import SkipJsonSchema, models_json_schema
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


def _absent_when_unset(schema: dict[str, Any]) -> None:
    """An optional field is left out of the answer, never sent as null: declare no default."""
    for field in schema.get("properties", {}).values():
        if "default" in field and field["default"] is None:
            del field["default"]


class _ErrorShape(BaseModel):
    model_config = ConfigDict(
        extra="allow", use_attribute_docstrings=True, json_schema_extra=_absent_when_unset
    )

    detail: str
    """What went wrong, for people."""
    code: str
    """What went wrong, for programs: ``not_found``, ``too_many_requests``..."""


class ErrorBody(_ErrorShape):
    """Every error answer: ``detail`` and ``code``, and the fields that matter to the error."""

    model_config = ConfigDict(title="Error")

    retry_after: int | SkipJsonSchema[None] = None
    """429: seconds to wait (also the ``Retry-After`` header)."""
    price: int | SkipJsonSchema[None] = None
    """402: what the refused submission costs."""
    limit: int | SkipJsonSchema[None] = None
    """429: the cap on unfinished requests that was reached."""
    status: str | SkipJsonSchema[None] = None
    """409: the status the request has already ended in."""


class FieldError(BaseModel):
    loc: list[str | int]
    """Where: ``body``, ``query``, ``path`` or ``header``, then the field's path."""
    msg: str
    type: str


class InvalidInputsBody(_ErrorShape):
    """422: a body, query or path that does not fit the call, or inputs its rules refuse."""

    model_config = ConfigDict(title="InvalidInputs")

    code: Literal["invalid_inputs"]
    fields: list[str] | SkipJsonSchema[None] = None
    """The fields a schema refused, each as ``inputs.text`` or ``query offset``."""
    errors: list[FieldError] | SkipJsonSchema[None] = None
    """Each problem a schema found (never the value sent), the first 20."""
    more: int | SkipJsonSchema[None] = None
    """How many problems ``errors`` leaves out."""
    missing: list[str] | SkipJsonSchema[None] = None
    unknown: list[str] | SkipJsonSchema[None] = None
    not_strings: list[str] | SkipJsonSchema[None] = None
    not_text: list[str] | SkipJsonSchema[None] = None
    """Fields holding text Postgres cannot store (a NUL, an unpaired surrogate)."""
    unknown_addons: list[str] | SkipJsonSchema[None] = None
    limit: int | SkipJsonSchema[None] = None
    """The longest prompt allowed, when the rendered one is longer; the most output tokens the
    offer allows, when more are asked for."""


SCHEMAS = "#/components/schemas/"
ERROR_REF = SCHEMAS + "Error"
INVALID_INPUTS_REF = SCHEMAS + "InvalidInputs"
_FASTAPI_ERRORS = ("HTTPValidationError", "ValidationError")
_RETRY_AFTER = {
    "Retry-After": {"description": "Seconds to wait before retrying", "schema": {"type": "integer"}}
}
AUTHENTICATED_ERRORS: dict[str, dict[str, Any]] = {
    "401": {
        "description": "No credentials, or unknown, revoked or expired ones",
        "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
    },
    "429": {
        "description": "The credential's rate limit is spent, or this address failed to "
        "authenticate too often",
        "headers": _RETRY_AFTER,
    },
    "503": {
        "description": "The database or the identity provider is unavailable; nothing was done",
        "headers": _RETRY_AFTER,
    },
}
"""What any call with credentials may answer."""
BODY_ERRORS: dict[str, dict[str, Any]] = {
    "400": {"description": "The body is not JSON text"},
    "413": {"description": "The body is larger than RELAI_MAX_BODY_BYTES"},
    "422": {"description": "The body does not fit the call"},
}
"""What any call with a body may answer."""


def _error_schemas() -> dict[str, Any]:
    _, top = models_json_schema(
        [(ErrorBody, "serialization"), (InvalidInputsBody, "serialization")],
        ref_template=SCHEMAS + "{model}",
    )
    schemas: dict[str, Any] = top["$defs"]
    names = {"ErrorBody": "Error", "InvalidInputsBody": "InvalidInputs"}
    return {names.get(name, name): schema for name, schema in schemas.items()}


ERROR_SCHEMAS = _error_schemas()


def _error_content(code: str, response: dict[str, Any]) -> dict[str, Any]:
    """``response`` with the error body it declares, ours wherever FastAPI put its own or none."""
    content = response.get("content", {})
    schema = content.get("application/json", {}).get("schema")
    if schema and schema.get("$ref") != SCHEMAS + "HTTPValidationError":
        return response
    ref = INVALID_INPUTS_REF if code == "422" else ERROR_REF
    return {**response, "content": {"application/json": {"schema": {"$ref": ref}}}}


def with_error_responses(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` (left unchanged) declaring the errors each operation really answers, in
    the one error shape: FastAPI's ``HTTPValidationError`` becomes ``InvalidInputs``, an
    error response declared without a body gets ``Error``, and every call with credentials
    (one whose ``security`` is not empty) declares 401, 429 and 503, every call with a body
    413 and 422."""
    secured_by_default = bool(document.get("security"))
    paths: dict[str, Any] = {}
    for path, item in document.get("paths", {}).items():
        paths[path] = dict(item)
        for method, operation in item.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses: dict[str, Any] = {}
            if operation.get("security", None if secured_by_default else []) != []:
                responses |= AUTHENTICATED_ERRORS
            if "requestBody" in operation:
                responses |= BODY_ERRORS
            for code, response in operation["responses"].items():
                responses[code] = {**responses.get(code, {}), **response}
            responses = {
                code: _error_content(code, r) if code[0] in "45" else r
                for code, r in sorted(responses.items())
            }
            paths[path][method] = {**operation, "responses": responses}
    components = dict(document.get("components", {}))
    schemas = {
        name: schema
        for name, schema in components.get("schemas", {}).items()
        if name not in _FASTAPI_ERRORS
    }
    components["schemas"] = {**schemas, **ERROR_SCHEMAS}
    return {**document, "paths": paths, "components": components}
