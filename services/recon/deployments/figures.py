"""What the workers leave in Redis about each deployment (``libs.contracts.models``), read in
one script so that the figures are of one instant, by Redis's clock."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from redis.asyncio import Redis

from libs.contracts.models import (
    COOL,
    DEPLOY_PREFIX,
    INFLIGHT,
    MINUTE,
    STAT_ERRORS,
    STAT_LATENCY_MS,
    STAT_OK,
)

WINDOW_MINUTES = 5
"""The calls counted are those that ended in the current minute and the four before it."""

# ARGV: the deployments' key prefix, the in-flight, cool and minute parts, the minute hash's
# fields (ok, errors, latency), the window in minutes, then the deployments' names.
# Returns, per name: {name, live leases, cool PTTL (ms; -2 absent, -1 no expiry), ok, errors,
# summed latency (a string: a float sum would be truncated as a reply)}.
_FIGURES = """
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local minute = math.floor(tonumber(t[1]) / 60)
local window = tonumber(ARGV[8])
local out = {}
for i = 9, #ARGV do
  local prefix = ARGV[1] .. ARGV[i]
  local live = redis.call('ZCOUNT', prefix .. ARGV[2], now_ms, '+inf')
  local pttl = redis.call('PTTL', prefix .. ARGV[3])
  local ok, errors, latency = 0, 0, 0
  for m = minute - window + 1, minute do
    local h = redis.call('HMGET', prefix .. ARGV[4] .. m, ARGV[5], ARGV[6], ARGV[7])
    ok = ok + (tonumber(h[1]) or 0)
    errors = errors + (tonumber(h[2]) or 0)
    latency = latency + (tonumber(h[3]) or 0)
  end
  table.insert(out, {ARGV[i], live, pttl, ok, errors, tostring(latency)})
end
return out
"""


@dataclass(frozen=True, slots=True)
class DeploymentFigures:
    in_flight: int
    cooling: bool
    cooling_s: float | None
    """Seconds until the cooldown ends; None when not cooling (or cooling with no expiry)."""
    calls: int
    errors: int
    latency_ms: float
    """Summed over the calls."""


async def read_figures(redis: Redis, names: Iterable[str]) -> dict[str, DeploymentFigures]:
    wanted = sorted(set(names))
    if not wanted:
        return {}
    rows = await redis.register_script(_FIGURES)(
        keys=[],
        args=[
            DEPLOY_PREFIX,
            INFLIGHT,
            COOL,
            MINUTE,
            STAT_OK,
            STAT_ERRORS,
            STAT_LATENCY_MS,
            WINDOW_MINUTES,
            *wanted,
        ],
    )
    figures = {}
    for name, live, pttl, ok, errors, latency in rows:
        ttl = int(pttl)
        figures[_text(name)] = DeploymentFigures(
            in_flight=int(live),
            cooling=ttl != -2,
            cooling_s=ttl / 1000 if ttl >= 0 else None,
            calls=int(ok) + int(errors),
            errors=int(errors),
            latency_ms=float(_text(latency)),
        )
    return figures


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
