from typing import Annotated

from fastapi import Depends
from starlette.requests import HTTPConnection

from services.api.auth.service import Authenticator, Principal
from services.api.limits.service import RateLimiter


def bearer_token(authorization: str | None) -> str | None:
    if authorization is None:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


async def _current_user(conn: HTTPConnection) -> Principal:
    # One dependency reading the header itself: every call pays for this resolution.
    auth: Authenticator = conn.state.auth
    principal = await auth.authenticate(bearer_token(conn.headers.get("authorization")))
    limiter: RateLimiter = conn.state.limiter
    await limiter.check(principal)
    return principal


CurrentUser = Annotated[Principal, Depends(_current_user)]
