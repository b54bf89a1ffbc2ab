"""Background loops that run a turn every so often, for as long as their process lives, and
stopping them for good."""

from libs.loops.periodic import every
from libs.loops.stop import cancel_and_wait, raise_if_cancelled

__all__ = ["cancel_and_wait", "every", "raise_if_cancelled"]
