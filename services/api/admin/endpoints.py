"""Administration: users, credits, scheduling weights and API keys. Every route needs the
admin role (403)."""

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, status

from libs import accounts
from libs.security import mask_secrets
from services.api.admin import repository
from services.api.admin.dependencies import ADMIN_ONLY, AdminUser
from services.api.admin.schemas import (
    NAME_PATTERN,
    Balance,
    CreatedUser,
    GrantBody,
    HandlerView,
    IdentityBody,
    IdentityView,
    KeyView,
    NewKey,
    NewUserBody,
    UserView,
    Weight,
    WeightBody,
)
from services.api.deps import PoolDep, RedisDep
from services.api.errors import Conflict, NotFound

router = APIRouter(prefix="/admin", tags=["admin"], responses=ADMIN_ONLY)

UserName = Annotated[str, Path(max_length=200, pattern=NAME_PATTERN)]
NO_SUCH_USER: dict[int | str, dict[str, Any]] = {404: {"description": "No such user"}}
NO_SUCH_KEY: dict[int | str, dict[str, Any]] = {404: {"description": "No such key"}}


@router.get("/users", response_model=list[UserView])
async def list_users(
    _: AdminUser,
    pool: PoolDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
) -> list[UserView]:
    rows = await repository.list_users(pool, limit=limit, offset=offset)
    return [UserView.model_validate(dict(r)) for r in rows]


@router.post(
    "/users",
    status_code=status.HTTP_201_CREATED,
    response_model=CreatedUser,
    responses={409: {"description": "A user by that name exists"}},
)
async def create_user(body: NewUserBody, _: AdminUser, pool: PoolDep) -> CreatedUser:
    async with pool.acquire() as conn, conn.transaction():
        try:
            new = await accounts.create_user(
                conn, name=body.name, credits=body.credits, role=body.role
            )
        except accounts.UserExistsError as exc:
            raise Conflict(str(exc)) from exc
    row = await repository.get_user(pool, body.name)
    assert row is not None
    return CreatedUser.model_validate({**dict(row), "api_key": new.api_key})


@router.post(
    "/users/{name}/grants",
    response_model=Balance,
    responses={
        404: {"description": "No such user"},
        409: {"description": "The balance would overflow"},
    },
)
async def grant(name: UserName, body: GrantBody, _: AdminUser, pool: PoolDep) -> Balance:
    """Add credits to a user's balance (a ``grant`` in the ledger)."""
    async with pool.acquire() as conn, conn.transaction():
        try:
            balance = await accounts.grant_credits(conn, user=name, amount=body.credits)
        except accounts.UnknownUserError as exc:
            raise NotFound(str(exc)) from exc
        except accounts.BalanceOverflowError as exc:
            raise Conflict(str(exc)) from exc
    return Balance(balance=balance)


@router.put("/users/{name}/weight", response_model=Weight, responses=NO_SUCH_USER)
async def set_weight(
    name: UserName, body: WeightBody, _: AdminUser, pool: PoolDep, redis: RedisDep
) -> Weight:
    """Set how many of the user's jobs fair scheduling takes per turn (1 to 100; 1 for
    everyone at first). Written to Postgres, then to the workers' mirror in Redis (recon
    rebuilds the mirror from Postgres every few seconds, should this second write fail)."""
    async with pool.acquire() as conn, conn.transaction():
        try:
            user_id = await accounts.set_weight(conn, user=name, weight=body.weight)
        except accounts.UnknownUserError as exc:
            raise NotFound(str(exc)) from exc
    await accounts.mirror_weight(redis, user_id, body.weight)
    return Weight(name=name, weight=body.weight)


@router.post(
    "/users/{name}/identities",
    status_code=status.HTTP_201_CREATED,
    response_model=IdentityView,
    responses={
        404: {"description": "No such user"},
        409: {"description": "The identity is linked already"},
    },
)
async def link_identity(
    name: UserName, body: IdentityBody, _: AdminUser, pool: PoolDep
) -> IdentityView:
    """Let an OIDC issuer's subject sign in as this user (409 if it is linked already)."""
    async with pool.acquire() as conn, conn.transaction():
        try:
            user_id = await accounts.link_identity(
                conn, user=name, issuer=body.issuer, subject=body.subject
            )
        except accounts.UnknownUserError as exc:
            raise NotFound(str(exc)) from exc
        except accounts.IdentityExistsError as exc:
            raise Conflict(str(exc)) from exc
    return IdentityView(issuer=body.issuer, subject=body.subject, user_id=user_id)


@router.get("/users/{name}/keys", response_model=list[KeyView], responses=NO_SUCH_USER)
async def list_keys(name: UserName, _: AdminUser, pool: PoolDep) -> list[KeyView]:
    async with pool.acquire() as conn:
        try:
            keys = await accounts.list_keys(conn, user=name)
        except accounts.UnknownUserError as exc:
            raise NotFound(str(exc)) from exc
    return [KeyView.model_validate(k, from_attributes=True) for k in keys]


@router.post("/keys/{key_id}/revoke", status_code=status.HTTP_204_NO_CONTENT, responses=NO_SUCH_KEY)
async def revoke_key(key_id: uuid.UUID, _: AdminUser, pool: PoolDep) -> None:
    """Revoke a key; API processes stop trusting it within ``RELAI_AUTH_CACHE_TTL_S``."""
    async with pool.acquire() as conn:
        try:
            await accounts.revoke_key(conn, key_id=key_id)
        except accounts.UnknownKeyError as exc:
            raise NotFound(str(exc)) from exc


@router.post("/keys/{key_id}/rotate", response_model=NewKey, responses=NO_SUCH_KEY)
async def rotate_key(key_id: uuid.UUID, _: AdminUser, pool: PoolDep) -> NewKey:
    """Revoke a live key and issue its user a new one."""
    async with pool.acquire() as conn, conn.transaction():
        try:
            return NewKey(api_key=await accounts.rotate_key(conn, key_id=key_id))
        except accounts.UnknownKeyError as exc:
            raise NotFound(str(exc)) from exc


@router.get("/handlers", response_model=list[HandlerView])
async def list_handlers(_: AdminUser, pool: PoolDep) -> list[HandlerView]:
    """The catalog's handlers, with secret-looking params masked."""
    rows = await repository.list_handlers(pool)
    return [
        HandlerView.model_validate({**dict(r), "params": mask_secrets(r["params"])}) for r in rows
    ]
