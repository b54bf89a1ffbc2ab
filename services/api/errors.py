"""Domain errors carry their HTTP status; one handler turns them into JSON."""

from typing import Any

import asyncpg
from fastapi import Request
from fastapi.responses import JSONResponse

from libs.logs import get_logger

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
