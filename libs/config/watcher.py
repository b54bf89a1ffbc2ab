"""Hot reload: a process's loaded configs, swapped whole when a new version is activated.

The watcher listens for activations (Postgres NOTIFY, MongoDB change streams) and polls every
``poll_s`` as well, for notifications lost while it reconnects. A version that fails to load
(bad checksum, wrong key, missing environment variable, invalid) is logged and skipped: the
process keeps its last good config.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from types import MappingProxyType
from typing import Generic, TypeVar

from cryptography.fernet import MultiFernet

from libs.config._store import ConfigStore
from libs.config.bootstrap import ACTIVE, open_store, read_bootstrap
from libs.config.errors import ConfigError
from libs.config.operations import LoadedConfig, load_version
from libs.logs import get_logger
from libs.loops import cancel_and_wait
from libs.settings import CommonSettings

log = get_logger(__name__)

T = TypeVar("T")


class ConfigWatcher:
    def __init__(
        self,
        store: ConfigStore,
        fernet: MultiFernet | None,
        wanted: Mapping[str, str],
        *,
        environ: Mapping[str, str],
        poll_s: float = 5.0,
    ) -> None:
        self._store = store
        self._fernet = fernet
        self._wanted = dict(wanted)
        self._environ = environ
        self._poll_s = poll_s
        self._loaded: Mapping[str, LoadedConfig] = MappingProxyType({})
        self._rejected: set[tuple[str, str, str]] = set()
        self._changed = asyncio.Event()

    @property
    def store(self) -> ConfigStore:
        """The store it reads: every config's versions (the admin API lists and activates
        them)."""
        return self._store

    @property
    def fernet(self) -> MultiFernet | None:
        """The bootstrap config's keys, or None when it names none."""
        return self._fernet

    def get(self, config_id: str) -> LoadedConfig | None:
        """The config loaded now, or None if it has no (good) version yet."""
        return self._loaded.get(config_id)

    @property
    def loaded(self) -> Mapping[str, LoadedConfig]:
        """Every config loaded now: one snapshot, replaced whole on each change."""
        return self._loaded

    async def load(self) -> None:
        """The first load: every wanted config that has a version. A pinned version that does
        not exist or fails to load is a ``ConfigError``; a missing active one only a warning."""
        loaded: dict[str, LoadedConfig] = {}
        active = await self._store.active_versions(
            [cid for cid, version in self._wanted.items() if version == ACTIVE]
        )
        for config_id, version in self._wanted.items():
            if version == ACTIVE and config_id not in active:
                log.info("config.none_active", config_id=config_id)
                continue
            wanted = active[config_id] if version == ACTIVE else version
            stored = await self._store.get(config_id, wanted)
            loaded[config_id] = load_version(stored, self._fernet, self._environ)
            self._log_loaded(loaded[config_id])
        self._loaded = MappingProxyType(loaded)

    async def refresh(self) -> bool:
        """Load every followed config whose active version changed; True if any did."""
        followed = [cid for cid, version in self._wanted.items() if version == ACTIVE]
        if not followed:
            return False
        active = await self._store.active_versions(followed)
        loaded = dict(self._loaded)
        for config_id, version in active.items():
            current = loaded.get(config_id)
            if current is not None and current.version == version:
                continue
            stored = await self._store.get(config_id, version)
            key = (config_id, version, stored.checksum)
            if key in self._rejected:
                continue
            try:
                loaded[config_id] = load_version(stored, self._fernet, self._environ)
            except ConfigError as exc:
                self._rejected.add(key)
                log.error(
                    "config.rejected",
                    config_id=config_id,
                    version=version,
                    kept=current.version if current else None,
                    error=str(exc),
                )
                continue
            self._log_loaded(loaded[config_id])
        if loaded == dict(self._loaded):
            return False
        self._loaded = MappingProxyType(loaded)
        return True

    async def run(self) -> None:
        """Refresh on every notification and every ``poll_s``, until cancelled."""
        listener = asyncio.create_task(self._store.watch(self._notified), name="config-listener")
        try:
            while True:
                try:
                    await asyncio.wait_for(self._changed.wait(), timeout=self._poll_s)
                except TimeoutError:
                    pass
                self._changed.clear()
                try:
                    await self.refresh()
                except (OSError, ConfigError) as exc:
                    log.warning("config.refresh_failed", error=str(exc))
                except Exception:
                    log.exception("config.refresh_failed")
        finally:
            await cancel_and_wait([listener])

    def _notified(self, config_id: str) -> None:
        if self._wanted.get(config_id) == ACTIVE:
            self._changed.set()

    @staticmethod
    def _log_loaded(config: LoadedConfig) -> None:
        log.info(
            "config.loaded",
            config_id=config.config_id,
            version=config.version,
            checksum=config.checksum,
        )


class Derived(Generic[T]):
    """A value worked out from one followed config (limits, a policy ...), worked out again
    only when that config changes: cheap enough to read on every call."""

    def __init__(
        self,
        config: ConfigWatcher | None,
        config_id: str,
        build: Callable[[LoadedConfig | None], T],
    ) -> None:
        self._config = config
        self._config_id = config_id
        self._build = build
        self._seen: LoadedConfig | None = None
        self._value = build(None)

    def current(self) -> T:
        loaded = self._config.get(self._config_id) if self._config is not None else None
        if loaded is not self._seen:
            self._seen = loaded
            self._value = self._build(loaded)
        return self._value


@asynccontextmanager
async def watching(
    settings: CommonSettings, environ: Mapping[str, str]
) -> AsyncIterator[ConfigWatcher | None]:
    """The process's configs, loaded and followed for as long as the context lasts; None when
    ``RELAI_CONFIG_FILE`` is not set. The first load failing is a ``ConfigError``."""
    if settings.config_file is None:
        yield None
        return
    bootstrap = read_bootstrap(settings.config_file, environ)
    fernet = bootstrap.fernet() if bootstrap.has_keys else None
    async with open_store(
        bootstrap,
        database_url=settings.database_url,
        mongo_url=settings.mongo_url,
        direct_url=settings.direct_database_url,
    ) as store:
        watcher = ConfigWatcher(
            store, fernet, bootstrap.configs, environ=environ, poll_s=settings.config_poll_s
        )
        await watcher.load()
        task = asyncio.create_task(watcher.run(), name="config-watcher")
        try:
            yield watcher
        finally:
            await cancel_and_wait([task])
