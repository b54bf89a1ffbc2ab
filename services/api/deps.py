"""Dependencies, declared once as ``Annotated`` aliases. Each hands out a resource that the
lifespan built (see ``state.AppState``)."""

from typing import Annotated

from fastapi import Depends
from redis.asyncio import Redis
from starlette.requests import HTTPConnection

from libs.db import PgPool
from services.api.auth.service import Authenticator
from services.api.catalog.service import OfferCatalog
from services.api.settings import ApiSettings
from services.api.state import app_state
from services.api.ws.hub import Hub


async def _pool(conn: HTTPConnection) -> PgPool:
    return app_state(conn).pool


async def _redis(conn: HTTPConnection) -> Redis:
    return app_state(conn).redis


async def _settings(conn: HTTPConnection) -> ApiSettings:
    return app_state(conn).settings


async def _catalog(conn: HTTPConnection) -> OfferCatalog:
    return app_state(conn).catalog


async def _auth(conn: HTTPConnection) -> Authenticator:
    return app_state(conn).auth


async def _hub(conn: HTTPConnection) -> Hub:
    return app_state(conn).hub


PoolDep = Annotated[PgPool, Depends(_pool)]
RedisDep = Annotated[Redis, Depends(_redis)]
SettingsDep = Annotated[ApiSettings, Depends(_settings)]
CatalogDep = Annotated[OfferCatalog, Depends(_catalog)]
AuthDep = Annotated[Authenticator, Depends(_auth)]
HubDep = Annotated[Hub, Depends(_hub)]
