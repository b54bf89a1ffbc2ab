from typing import Annotated

from fastapi import Depends
from starlette.requests import HTTPConnection

from services.api.auth.service import Principal
from services.api.state import app_state


def bearer_token(authorization: str | None) -> str | None:
    if authorization is None:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


async def current_user(conn: HTTPConnection) -> Principal:
    """The caller, authenticated and held to its rate limit."""
    # One dependency reading the header itself: every call pays for this resolution.
    state = app_state(conn)
    principal = await state.auth.authenticate(
        bearer_token(conn.headers.get("authorization")), conn.scope.get("client")
    )
    await state.limiter.check(principal)
    return principal


CurrentUser = Annotated[Principal, Depends(current_user)]
