"""What the API builds at startup and every request can reach."""

from __future__ import annotations

from typing import Any, TypedDict

import asyncpg
from redis.asyncio import Redis

from libs.config import ConfigWatcher
from services.api.auth.service import Authenticator
from services.api.catalog.service import OfferCatalog
from services.api.deals.service import DealCatalog
from services.api.limits.policy import LimitsPolicy
from services.api.limits.service import RateLimiter
from services.api.requests.batcher import SubmitBatcher
from services.api.settings import ApiSettings
from services.api.ws.hub import Hub


class State(TypedDict):
    settings: ApiSettings
    pool: asyncpg.Pool[Any]
    redis: Redis
    catalog: OfferCatalog
    auth: Authenticator
    hub: Hub
    batcher: SubmitBatcher
    config: ConfigWatcher | None
    """The central configs this process follows (``RELAI_CONFIG_FILE``), or None."""
    deals: DealCatalog
    limiter: RateLimiter
    limits: LimitsPolicy
    """The rate limits and caps in force (the config ``api``, else the settings)."""
