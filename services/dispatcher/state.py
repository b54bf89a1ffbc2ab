"""What the dispatcher builds at startup and its endpoints reach, read through
``dispatcher_state``: one typed object under one key."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.requests import HTTPConnection

from libs.db import PgPool
from services.dispatcher.delivery.service import Dispatcher
from services.dispatcher.settings import DispatcherSettings

_KEY = "dispatcher"


@dataclass(frozen=True, slots=True)
class DispatcherState:
    settings: DispatcherSettings
    pool: PgPool
    dispatcher: Dispatcher

    def lifespan_state(self) -> dict[str, Any]:
        """What the lifespan yields: Starlette hands it to every request."""
        return {_KEY: self}


def dispatcher_state(conn: HTTPConnection) -> DispatcherState:
    state: DispatcherState = conn.scope["state"][_KEY]
    return state
