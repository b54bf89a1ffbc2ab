"""What the worker takes from the central config ``worker``: params by handler id."""

from collections.abc import Mapping
from typing import Any

from libs.config import ConfigWatcher, WorkerConfig
from services.worker._execute import HandlerParams

CONFIG_ID = "worker"


def handler_params(watcher: ConfigWatcher) -> HandlerParams:
    """Each job reads the config loaded when it starts: a newly activated version applies to
    the jobs that start after it, and a running job keeps the params it started with."""

    def params_for(handler: str) -> Mapping[str, Any]:
        loaded = watcher.get(CONFIG_ID)
        if loaded is None or not isinstance(loaded.data, WorkerConfig):
            return {}
        return loaded.data.handlers.get(handler, {})

    return params_for
