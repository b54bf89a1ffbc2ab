"""What the worker takes from the central config ``worker``: params by handler id, and the
integrations (provider accounts) that params name."""

from collections.abc import Mapping
from typing import Any

from libs.config import ConfigWatcher, Integration, WorkerConfig
from services.worker._execute import DeploymentParams, HandlerParams
from services.worker.job import HandlerError

CONFIG_ID = "worker"
_GIVEN_BY_INTEGRATION = ("base_url", "url")


def handler_params(watcher: ConfigWatcher) -> HandlerParams:
    """Each job reads the config loaded when it starts: a newly activated version applies to
    the jobs that start after it, and a running job keeps the params it started with."""

    def params_for(handler: str, params: Mapping[str, Any]) -> Mapping[str, Any]:
        loaded = watcher.get(CONFIG_ID)
        if loaded is None or not isinstance(loaded.data, WorkerConfig):
            return params
        config = loaded.data
        merged = {**params, **config.handlers.get(handler, {})}
        return with_integration(merged, params, config.integrations)

    return params_for


def deployment_params(watcher: ConfigWatcher) -> DeploymentParams:
    """A job of a model calls each of its deployments as if its params named the deployment's
    integration; one the loaded config does not have is not called."""

    def params_for(
        merged: Mapping[str, Any], catalog: Mapping[str, Any], integration: str
    ) -> Mapping[str, Any] | None:
        loaded = watcher.get(CONFIG_ID)
        if loaded is None or not isinstance(loaded.data, WorkerConfig):
            return None
        found = loaded.data.integrations.get(integration)
        if found is None:
            return None
        named = {**merged, "integration": integration}
        return with_integration(named, catalog, {integration: found})

    return params_for


def with_integration(
    merged: Mapping[str, Any], catalog: Mapping[str, Any], integrations: Mapping[str, Integration]
) -> Mapping[str, Any]:
    """``merged`` params with the URL, key and headers of the integration they name, when the
    operator configured it. The catalog's own params (``catalog``) may not give that job a URL:
    its key goes to its integration's URL and nowhere else."""
    name = merged.get("integration")
    integration = integrations.get(name) if isinstance(name, str) else None
    if integration is None:
        return merged
    for key in _GIVEN_BY_INTEGRATION:
        if key in catalog:
            raise HandlerError(
                f"invalid params: {key} comes from the integration {name!r}, not the catalog"
            )
    headers = merged.get("headers")
    return {
        **merged,
        "base_url": integration.base_url,
        "api_key": integration.api_key,
        "api_key_header": integration.auth_header,
        "api_key_prefix": integration.auth_prefix,
        "headers": {**(headers if isinstance(headers, Mapping) else {}), **integration.headers},
    }
