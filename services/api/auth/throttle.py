"""Failed authentication, throttled per client address, in this process.

An address that fails to authenticate ``per_window`` times within a window (which opens at its
first failure) is refused, until the window ends, every credential this process has not verified
lately: 429 with ``Retry-After``, without a look at Postgres. Counting in the process costs a
successful call nothing (a verified credential never reaches the throttle) and needs no Redis
round trip on a failure either; the price is that each API process counts on its own, so an
address may fail ``per_window`` times per window and per process.

Addresses are the ASGI ``client`` host: behind a proxy, that is the proxy unless uvicorn trusts
its ``X-Forwarded-For`` (``FORWARDED_ALLOW_IPS``). An IPv6 address counts as its /64 network,
the block one host usually holds. At most ``maxsize`` addresses are followed; past that the least
recently used is forgotten, so memory stays bounded whatever the number of addresses.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from cachetools import TTLCache

from libs.logs import get_logger

log = get_logger(__name__)

WINDOW_S = 60.0

Client = Sequence[Any] | None
"""An ASGI scope's ``client``: ``(host, port)``, or None when the server does not know it."""


def address_key(client: Client) -> str:
    """What failures are counted against: the host, an IPv6 one as its /64 network."""
    if not client:
        return "unknown"
    host = str(client[0])
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host  # a unix socket's path, a test client's name
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


@dataclass(slots=True)
class _Window:
    ends: float
    failures: int = 1


class FailureThrottle:
    def __init__(
        self,
        *,
        per_window: int,
        window_s: float = WINDOW_S,
        maxsize: int = 100_000,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_window = per_window
        self._window_s = window_s
        self._timer = timer
        # An entry lives window_s from its first failure: updating it in place keeps that.
        self._windows: TTLCache[str, _Window] = TTLCache(maxsize, ttl=window_s, timer=timer)

    def retry_after(self, client: Client) -> int | None:
        """Seconds until ``client`` may try an unverified credential again; None: it may now."""
        if self.per_window <= 0:
            return None
        window = self._windows.get(address_key(client))
        if window is None or window.failures < self.per_window:
            return None
        return max(1, math.ceil(window.ends - self._timer()))

    def failed(self, client: Client) -> None:
        """Count a failed authentication from ``client``."""
        if self.per_window <= 0:
            return
        key = address_key(client)
        window = self._windows.get(key)
        if window is None:
            window = self._windows[key] = _Window(ends=self._timer() + self._window_s)
        else:
            window.failures += 1
        if window.failures == self.per_window:
            log.warning(
                "authentication throttled",
                address=key,
                failures=window.failures,
                retry_after_s=math.ceil(window.ends - self._timer()),
            )
