"""Central, versioned configuration: the YAML notations (``~`` secrets encrypted with Fernet,
``^`` bytes, ``!ENV`` variables), the stores (Postgres, MongoDB), operators' operations and a
hot-reloading watcher. The stores live in ``libs.config.postgres`` and ``libs.config.mongo``,
imported only when one is opened: SQLAlchemy and PyMongo would otherwise double the start-up
time of a worker, which needs neither unless it reads a central config."""

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
from libs.config.schemas import ApiConfig, Integration, ReconConfig, WorkerConfig
from libs.config.watcher import ConfigWatcher, Derived, watching

__all__ = [
    "ACTIVE",
    "NOTIFY_CHANNEL",
    "ApiConfig",
    "ReconConfig",
    "Bootstrap",
    "ChecksumError",
    "ConfigError",
    "ConfigStore",
    "ConfigSummary",
    "ConfigWatcher",
    "Derived",
    "LoadedConfig",
    "NothingToRollBackError",
    "StoredVersion",
    "UnknownConfigError",
    "VersionExistsError",
    "WorkerConfig",
    "Integration",
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
