"""Dependencies, declared once as ``Annotated`` aliases. Each hands out a resource that the
lifespan built into the app's state (see ``state.State``)."""

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends
from redis.asyncio import Redis
from starlette.requests import HTTPConnection

from libs.db import PgPool
from services.api.auth.service import Authenticator
from services.api.catalog.service import OfferCatalog
from services.api.settings import ApiSettings
from services.api.ws.hub import Hub


def _from_state(name: str) -> Callable[[HTTPConnection], Awaitable[Any]]:
    async def get(conn: HTTPConnection) -> Any:
        return getattr(conn.state, name)

    get.__name__ = f"state_{name}"
    return get


PoolDep = Annotated[PgPool, Depends(_from_state("pool"))]
RedisDep = Annotated[Redis, Depends(_from_state("redis"))]
SettingsDep = Annotated[ApiSettings, Depends(_from_state("settings"))]
CatalogDep = Annotated[OfferCatalog, Depends(_from_state("catalog"))]
AuthDep = Annotated[Authenticator, Depends(_from_state("auth"))]
HubDep = Annotated[Hub, Depends(_from_state("hub"))]
