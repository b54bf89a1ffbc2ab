"""Per-credential rate limit: a generic cell rate algorithm (GCRA) in one atomic Lua script, so
that every API replica draws on the same allowance and a burst cannot slip between a read and
a write. ``rate_per_s`` calls a second are allowed on average, ``burst`` at once."""

from __future__ import annotations

import math

from redis.asyncio import Redis
from redis.exceptions import RedisError

from libs.logs import get_logger
from libs.streams import create_redis
from services.api.auth.service import Principal
from services.api.errors import TooManyRequests
from services.api.limits.policy import LimitsPolicy

log = get_logger(__name__)

KEY_PREFIX = "relai:rate:"

# KEYS[1]: the credential's key. ARGV: emission interval (µs), burst (calls).
# Returns 0 when the call is allowed, else the µs to wait before the next one would be.
_GCRA = """
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local new_tat = tat + interval
local allowed_at = new_tat - interval * burst
if allowed_at > now then
  return allowed_at - now
end
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil((new_tat - now) / 1000) + 1)
return 0
"""


class RateLimiter:
    """Owns its Redis connections: a pool that waits for a free connection, so that a burst of
    calls queues for the check instead of skipping it the way an exhausted pool would. The rate
    and burst are the policy's current ones, read on each call."""

    def __init__(self, redis_url: str, *, policy: LimitsPolicy, max_connections: int = 32) -> None:
        self._policy = policy
        self._redis: Redis = create_redis(
            redis_url, max_connections=max_connections, wait_for_connection_s=5
        )
        self._script = self._redis.register_script(_GCRA)

    async def aclose(self) -> None:
        await self._redis.aclose()

    async def check(self, principal: Principal) -> None:
        """Count one call against ``principal``'s credential; 429 with ``Retry-After`` when
        it is over its allowance. Redis unreachable lets the call through (and says so)."""
        limits = self._policy.current()
        if limits.rate_per_s <= 0:
            return
        try:
            wait_us = int(
                await self._script(
                    keys=[KEY_PREFIX + principal.credential],
                    args=[max(1, int(1_000_000 / limits.rate_per_s)), max(1, limits.burst)],
                )
            )
        except (RedisError, OSError) as exc:
            log.warning("rate limit not checked: redis unavailable", error=repr(exc))
            return
        if wait_us > 0:
            retry_after = max(1, math.ceil(wait_us / 1_000_000))
            raise TooManyRequests(
                "rate limit exceeded for this credential; retry later",
                retry_after=retry_after,
            )
