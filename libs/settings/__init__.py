"""Typed process settings read from the environment (never at import time)."""

from libs.settings.base import CommonSettings

__all__ = ["CommonSettings"]
