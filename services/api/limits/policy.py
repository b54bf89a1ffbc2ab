"""The limits in force: the ``limits`` section of the active config ``api`` where it sets them,
else the process settings (``RELAI_RATE_LIMIT_*``, ``RELAI_MAX_UNFINISHED_PER_USER``). A new
version activated is in force from the next call on, in every replica, without a restart."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from libs.config import ApiConfig, ConfigWatcher, Derived, LoadedConfig
from services.api.settings import ApiSettings


@dataclass(frozen=True, slots=True)
class Limits:
    rate_per_s: float
    """Calls per second allowed per credential; 0: no limit."""
    burst: int
    """Calls a credential may make at once before the rate applies."""
    max_unfinished_per_user: int
    """Most pending or running requests per user; 0: no cap."""


LimitsPolicy = Derived[Limits]


def limits_policy(settings: ApiSettings, config: ConfigWatcher | None) -> LimitsPolicy:
    defaults = Limits(
        rate_per_s=settings.rate_limit_per_s,
        burst=settings.rate_limit_burst,
        max_unfinished_per_user=settings.max_unfinished_per_user,
    )

    def build(loaded: LoadedConfig | None) -> Limits:
        if loaded is None or not isinstance(loaded.data, ApiConfig) or not loaded.data.limits:
            return defaults
        return dataclasses.replace(defaults, **loaded.data.limits.model_dump(exclude_none=True))

    return Derived(config, "api", build)
