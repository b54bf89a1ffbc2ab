"""Dependencies, declared once as ``Annotated`` aliases."""

from typing import Annotated

from fastapi import Depends
from redis.asyncio import Redis
from starlette.requests import HTTPConnection

from libs.db import PgPool
from services.api.auth.service import Authenticator
from services.api.catalog.service import OfferCatalog
from services.api.requests.batcher import SubmitBatcher
from services.api.settings import ApiSettings
from services.api.ws.hub import Hub


async def _pool(conn: HTTPConnection) -> PgPool:
    return conn.state.pool  # type: ignore[no-any-return]


async def _redis(conn: HTTPConnection) -> Redis:
    return conn.state.redis  # type: ignore[no-any-return]


async def _settings(conn: HTTPConnection) -> ApiSettings:
    return conn.state.settings  # type: ignore[no-any-return]


async def _catalog(conn: HTTPConnection) -> OfferCatalog:
    return conn.state.catalog  # type: ignore[no-any-return]


async def _auth(conn: HTTPConnection) -> Authenticator:
    return conn.state.auth  # type: ignore[no-any-return]


async def _batcher(conn: HTTPConnection) -> SubmitBatcher:
    return conn.state.batcher  # type: ignore[no-any-return]


async def _hub(conn: HTTPConnection) -> Hub:
    return conn.state.hub  # type: ignore[no-any-return]


PoolDep = Annotated[PgPool, Depends(_pool)]
RedisDep = Annotated[Redis, Depends(_redis)]
SettingsDep = Annotated[ApiSettings, Depends(_settings)]
CatalogDep = Annotated[OfferCatalog, Depends(_catalog)]
AuthDep = Annotated[Authenticator, Depends(_auth)]
HubDep = Annotated[Hub, Depends(_hub)]
BatcherDep = Annotated[SubmitBatcher, Depends(_batcher)]
