"""Background loops that run a turn every so often, for as long as their process lives."""

from libs.loops.periodic import every

__all__ = ["every"]
