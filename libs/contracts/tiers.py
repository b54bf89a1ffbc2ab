"""Priority tiers: what a request asks to be served at, and what it was served at.

``priority`` is served first (dearer), ``default`` as usual, ``flex`` when there is room (cheaper,
may wait). Which tiers an offer sells, and at what share of its price, is catalog data
(``libs.catalog``); how workers honour them is their scheduling (``RELAI_WORKER_SCHEDULING``):
under ``fair`` each tier waits in a queue of its own, taken by weight; under ``fifo`` every job
runs in arrival order and is served at ``default``. A request is billed at the tier it was
served at when that is cheaper than the one it asked for, never more.
"""

from typing import Literal

Tier = Literal["flex", "default", "priority"]

TIERS: tuple[Tier, ...] = ("flex", "default", "priority")
"""Every tier, cheapest first."""

DEFAULT_TIER: Tier = "default"
