"""What the API builds at startup and every request can reach, read through ``app_state``: one
typed object under one key, so that renaming a resource is a type error, not a failure at run
time."""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from starlette.requests import HTTPConnection

from libs.blobs import BlobStore
from libs.config import ConfigWatcher
from libs.db import PgPool
from services.api.auth.service import Authenticator
from services.api.catalog.deals import DealCatalog
from services.api.catalog.service import OfferCatalog
from services.api.files.signing import FileUrls
from services.api.limits.policy import LimitsPolicy
from services.api.limits.service import RateLimiter
from services.api.settings import ApiSettings
from services.api.submission import Submitter
from services.api.ws.hub import Hub

_KEY = "relai"


@dataclass(frozen=True, slots=True)
class AppState:
    settings: ApiSettings
    pool: PgPool
    redis: Redis
    catalog: OfferCatalog
    auth: Authenticator
    hub: Hub
    submitter: Submitter
    config: ConfigWatcher | None
    """The central configs this process follows (``RELAI_CONFIG_FILE``), or None."""
    deals: DealCatalog
    limiter: RateLimiter
    limits: LimitsPolicy
    """The rate limits and caps in force (the config ``api``, else the settings)."""
    store: BlobStore
    """Files' bytes (``RELAI_BLOB_URL``)."""
    decoders: Executor
    """Where uploaded images are decoded to be checked: ``RELAI_IMAGE_DECODES`` threads, so
    that a burst of large uploads waits its turn rather than holding them all in memory."""
    file_urls: FileUrls
    """Signs and checks the URLs that serve a file without a key."""

    def lifespan_state(self) -> dict[str, Any]:
        """What the lifespan yields: Starlette hands it to every request."""
        return {_KEY: self}


def app_state(conn: HTTPConnection) -> AppState:
    state: AppState = conn.scope["state"][_KEY]
    return state


def lifespan_app_state(state: Mapping[str, Any]) -> AppState | None:
    """The app state in the lifespan's state dict (which uvicorn also hands its connection
    protocols), once the lifespan has started; None before, or for an app without it."""
    found = state.get(_KEY)
    return found if isinstance(found, AppState) else None
