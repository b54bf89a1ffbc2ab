"""The limits in force: the ``limits`` section of the active config ``api`` where it sets them,
else the process settings (``RELAI_RATE_LIMIT_*``, ``RELAI_MAX_UNFINISHED_PER_USER``). A new
version activated is in force from the next call on, in every replica, without a restart."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from libs.config import ApiConfig, ConfigWatcher, LoadedConfig
from services.api.settings import ApiSettings


@dataclass(frozen=True, slots=True)
class Limits:
    rate_per_s: float
    """Calls per second allowed per credential; 0: no limit."""
    burst: int
    """Calls a credential may make at once before the rate applies."""
    max_unfinished_per_user: int
    """Most pending or running requests per user; 0: no cap."""


class LimitsPolicy:
    def __init__(self, settings: ApiSettings, config: ConfigWatcher | None) -> None:
        self._config = config
        self._defaults = Limits(
            rate_per_s=settings.rate_limit_per_s,
            burst=settings.rate_limit_burst,
            max_unfinished_per_user=settings.max_unfinished_per_user,
        )
        self._seen: LoadedConfig | None = None
        self._current = self._defaults

    def current(self) -> Limits:
        """Cheap on every call: the limits are worked out again only when the config changed."""
        loaded = self._config.get("api") if self._config is not None else None
        if loaded is not self._seen:
            self._seen = loaded
            self._current = self._defaults
            if loaded is not None and isinstance(loaded.data, ApiConfig) and loaded.data.limits:
                self._current = dataclasses.replace(
                    self._defaults, **loaded.data.limits.model_dump(exclude_none=True)
                )
        return self._current
