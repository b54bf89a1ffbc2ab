from typing import Annotated

from fastapi import Depends, Request

from libs.db import PgPool
from services.dispatcher.delivery.service import Dispatcher
from services.dispatcher.settings import DispatcherSettings
from services.dispatcher.state import dispatcher_state


def _settings(request: Request) -> DispatcherSettings:
    return dispatcher_state(request).settings


def _pool(request: Request) -> PgPool:
    return dispatcher_state(request).pool


def _dispatcher(request: Request) -> Dispatcher:
    return dispatcher_state(request).dispatcher


SettingsDep = Annotated[DispatcherSettings, Depends(_settings)]
PoolDep = Annotated[PgPool, Depends(_pool)]
DispatcherDep = Annotated[Dispatcher, Depends(_dispatcher)]
