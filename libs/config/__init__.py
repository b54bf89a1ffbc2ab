"""Central, versioned configuration: the YAML notations (``~`` secrets encrypted with Fernet,
``^`` bytes, ``!ENV`` variables), the stores (Postgres, MongoDB), operators' operations and a
hot-reloading watcher. The MongoDB store lives in ``libs.config.mongo``, imported only by
those who use it (PyMongo adds a fifth to a process's start-up time)."""

from libs.config._postgres import PostgresConfigStore
from libs.config._store import NOTIFY_CHANNEL, ConfigStore, ConfigSummary, StoredVersion, checksum
from libs.config.bootstrap import ACTIVE, Bootstrap, open_store, read_bootstrap
from libs.config.errors import (
    ChecksumError,
    ConfigError,
    NothingToRollBackError,
    UnknownConfigError,
    VersionExistsError,
)
from libs.config.operations import (
    LoadedConfig,
    diff,
    load_version,
    rotate_keys,
    seal_source,
    show,
    upload,
)
from libs.config.schemas import ApiConfig, WorkerConfig
from libs.config.watcher import ConfigWatcher, watching

__all__ = [
    "ACTIVE",
    "NOTIFY_CHANNEL",
    "ApiConfig",
    "Bootstrap",
    "ChecksumError",
    "ConfigError",
    "ConfigStore",
    "ConfigSummary",
    "ConfigWatcher",
    "LoadedConfig",
    "NothingToRollBackError",
    "PostgresConfigStore",
    "StoredVersion",
    "UnknownConfigError",
    "VersionExistsError",
    "WorkerConfig",
    "checksum",
    "diff",
    "load_version",
    "open_store",
    "read_bootstrap",
    "rotate_keys",
    "seal_source",
    "show",
    "upload",
    "watching",
]
