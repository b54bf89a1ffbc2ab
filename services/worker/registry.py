from collections.abc import Iterator

from libs.contracts import is_handler_id
from services.worker.job import Handler, HandlerError


class UnknownHandlerError(HandlerError):
    def __init__(self, name: str) -> None:
        super().__init__(f"unknown handler {name!r}")
        self.name = name


class HandlerRegistry:
    """Handlers by id ``<module>.<method>``, built by ``handlers.build_registry()``; not global."""

    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}

    def register(self, name: str, handler: Handler) -> None:
        if not is_handler_id(name):
            raise ValueError(f"handler id {name!r} is not '<module>.<method>'")
        if name in self._handlers:
            raise ValueError(f"handler {name!r} is already registered")
        self._handlers[name] = handler

    def get(self, name: str) -> Handler:
        try:
            return self._handlers[name]
        except KeyError:
            raise UnknownHandlerError(name) from None

    def __contains__(self, name: object) -> bool:
        return name in self._handlers

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._handlers))

    def __len__(self) -> int:
        return len(self._handlers)
