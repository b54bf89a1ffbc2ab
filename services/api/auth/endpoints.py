from fastapi import APIRouter

from services.api.auth import repository
from services.api.auth.dependencies import CurrentUser
from services.api.auth.schemas import Me
from services.api.deps import PoolDep
from services.api.errors import Unauthorized

router = APIRouter(tags=["account"])


@router.get("/me", response_model=Me)
async def me(user: CurrentUser, pool: PoolDep) -> Me:
    row = await repository.get_account(pool, user.id)
    if row is None:
        raise Unauthorized("the key's user no longer exists")
    return Me.model_validate(dict(row))
