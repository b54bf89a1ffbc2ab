"""The worker's composition root for handlers: every handler this worker can run is listed here."""

import random

from services.worker.handlers.echo import EchoDelay, EchoStream, EchoText
from services.worker.registry import HandlerRegistry

__all__ = ["build_registry"]


def build_registry(*, rng: random.Random | None = None) -> HandlerRegistry:
    registry = HandlerRegistry()
    registry.register("echo.text", EchoText())
    registry.register("echo.delay", EchoDelay(rng))
    registry.register("echo.stream", EchoStream())
    return registry
