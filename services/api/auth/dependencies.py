from typing import Annotated

from fastapi import Depends
from starlette.requests import HTTPConnection

from services.api.auth.service import Authenticator, Principal


def bearer_token(authorization: str | None) -> str | None:
    if authorization is None:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


async def _current_user(conn: HTTPConnection) -> Principal:
    # One dependency reading the header itself: every call pays for this resolution.
    auth: Authenticator = conn.state.auth
    return await auth.authenticate(bearer_token(conn.headers.get("authorization")))


CurrentUser = Annotated[Principal, Depends(_current_user)]
