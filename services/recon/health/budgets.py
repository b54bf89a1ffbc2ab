"""The credit budgets of the integrations workers share (see the worker's limits): how much of
each one's current window is spent, read in one script so that the figures are of one instant."""

from __future__ import annotations

from redis.asyncio import Redis

from libs.contracts.limits import (
    CONF,
    CONF_BUDGET,
    CONF_WINDOW,
    LIMITS_KNOWN_KEY,
    LIMITS_PREFIX,
    SPENT,
)
from services.recon.health.schemas import IntegrationBudget

# KEYS[1]: the set of known integrations. ARGV: the limits key prefix, the conf hash's and the
# spent counters' parts (``libs.contracts.limits``), the budget's and the window's conf fields.
# Returns {name, budget, window ms, spent, ms until the window ends} per integration with a budget.
_BUDGETS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {}
for _, name in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local prefix = ARGV[1] .. name
  local conf = redis.call('HMGET', prefix .. ARGV[2], ARGV[4], ARGV[5])
  local budget, window = tonumber(conf[1]), tonumber(conf[2])
  if budget and window and window > 0 then
    local index = math.floor(now / window)
    local spent = tonumber(redis.call('GET', prefix .. ARGV[3] .. index) or '0')
    table.insert(out, {name, budget, window, spent, (index + 1) * window - now})
  end
end
return out
"""


async def read_budgets(redis: Redis) -> dict[str, IntegrationBudget]:
    rows = await redis.register_script(_BUDGETS)(
        keys=[LIMITS_KNOWN_KEY], args=[LIMITS_PREFIX, CONF, SPENT, CONF_BUDGET, CONF_WINDOW]
    )
    budgets = {}
    for name, budget, window_ms, spent, left_ms in rows:
        budgets[name.decode() if isinstance(name, bytes) else name] = IntegrationBudget(
            budget=int(budget),
            spent=int(spent),
            window_seconds=int(window_ms) / 1000,
            resets_in_seconds=int(left_ms) / 1000,
        )
    return dict(sorted(budgets.items()))
