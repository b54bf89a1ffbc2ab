"""Domain errors carry their HTTP status; one handler turns them into JSON."""

from collections.abc import Sequence
from typing import Any

import asyncpg
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

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


async def relai_error_handler(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RelaiError)
    return JSONResponse(
        {"detail": exc.message, "code": exc.code, **exc.extra},
        status_code=exc.status_code,
        headers=exc.headers,
    )


def _where(loc: Sequence[Any]) -> str:
    """``("body", "inputs", "text")`` as ``inputs.text``; a query or path parameter keeps its
    kind: ``query offset``."""
    kind, *rest = loc or ("body",)
    path = ".".join(str(part) for part in rest)
    if kind == "body":
        return path or "body"
    return f"{kind} {path}" if path else str(kind)


async def validation_error_handler(_: Request, exc: Exception) -> JSONResponse:
    """A request pydantic refused, in the one error shape: each field named with its problem,
    and none of the input echoed (it may be huge, or text no JSON encoder here can write)."""
    assert isinstance(exc, RequestValidationError)
    problems = [(_where(error.get("loc", ())), str(error.get("msg", ""))) for error in exc.errors()]
    fields = list(dict.fromkeys(printable(where) for where, _ in problems))
    detail = "; ".join(printable(f"{where}: {msg}") for where, msg in problems)
    return JSONResponse(
        {"detail": detail or "invalid request", "code": InvalidInputs.code, "fields": fields},
        status_code=InvalidInputs.status_code,
    )


UNAVAILABLE = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
)
"""What Postgres being down or unreachable looks like to the API."""


async def unavailable_handler(_: Request, exc: Exception) -> JSONResponse:
    """Postgres unreachable: the call had no effect (its transaction never committed), so the
    client is told to retry rather than shown a 500."""
    log.warning("database unavailable", error=repr(exc))
    return JSONResponse(
        {"detail": "the database is unavailable; nothing was done, retry", "code": "unavailable"},
        status_code=503,
        headers={"Retry-After": "1"},
    )
