"""Handlers installed as packages: entry points of the group ``relai.handlers``.

An entry point's name is the handler id (``<module>.<method>``), its object a handler class or a
factory called without arguments; a ``ProviderHandler`` subclass is built with the worker's
shared HTTP client instead. A plugin that cannot be loaded stops the worker at startup with an
error naming it, rather than failing its jobs one by one later.
"""

import inspect
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from libs.logs import get_logger
from services.worker.job import Handler
from services.worker.providers import ProviderHandler, ProviderHttp
from services.worker.registry import HandlerRegistry

log = get_logger(__name__)

GROUP = "relai.handlers"


class PluginError(RuntimeError):
    pass


def register_plugins(registry: HandlerRegistry, http: ProviderHttp) -> list[str]:
    """Register every installed handler plugin; returns their ids."""
    names: list[str] = []
    for point in sorted(entry_points(group=GROUP), key=lambda p: p.name):
        handler = _load(point, http)
        try:
            registry.register(point.name, handler)
        except ValueError as exc:
            raise PluginError(f"handler plugin {_origin(point)}: {exc}") from exc
        log.info("worker.plugin_loaded", handler=point.name, origin=_origin(point))
        names.append(point.name)
    return names


def _load(point: EntryPoint, http: ProviderHttp) -> Handler:
    try:
        target: Any = point.load()
        if inspect.isclass(target) and issubclass(target, ProviderHandler):
            handler = target(point.name, http)
        elif callable(target) and not _is_handler(target):
            handler = target()
        else:
            handler = target
    except Exception as exc:
        raise PluginError(
            f"handler plugin {_origin(point)} cannot be loaded: {type(exc).__name__}: {exc}"
        ) from exc
    if not _is_handler(handler):
        raise PluginError(
            f"handler plugin {_origin(point)} gave {type(handler).__name__}, "
            "which has no async execute(job, ctx)"
        )
    return handler


def _is_handler(obj: object) -> bool:
    return not inspect.isclass(obj) and inspect.iscoroutinefunction(getattr(obj, "execute", None))


def _origin(point: EntryPoint) -> str:
    dist = point.dist
    where = f" from {dist.name} {dist.version}" if dist is not None else ""
    return f"{point.name!r} ({point.value}){where}"
