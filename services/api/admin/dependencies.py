from typing import Annotated, Any

from fastapi import Depends

from services.api.auth.dependencies import CurrentUser
from services.api.auth.service import Principal
from services.api.errors import Forbidden


async def _admin(user: CurrentUser) -> Principal:
    if not user.is_admin:
        raise Forbidden("this needs the admin role")
    return user


AdminUser = Annotated[Principal, Depends(_admin)]
ADMIN_ONLY: dict[int | str, dict[str, Any]] = {403: {"description": "The caller is not an admin"}}
"""What every admin route declares besides its own answers."""
