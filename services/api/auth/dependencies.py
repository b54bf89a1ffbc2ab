from typing import Annotated

from fastapi import Depends, Header

from services.api.auth.service import Principal
from services.api.deps import AuthDep


def bearer_token(authorization: str | None) -> str | None:
    if authorization is None:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


async def _current_user(
    auth: AuthDep, authorization: Annotated[str | None, Header()] = None
) -> Principal:
    return await auth.authenticate(bearer_token(authorization))


CurrentUser = Annotated[Principal, Depends(_current_user)]
