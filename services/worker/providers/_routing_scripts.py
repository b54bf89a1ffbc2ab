"""The Redis scripts of routing across a model's deployments (``routing``); the keys and their
layout are ``libs.contracts.models``'."""

# KEYS: each deployment's in-flight zset and cool key, in turn; then the known set.
# ARGV: call id, lease (ms), a random number in [0, 1), then per deployment its name, weight,
# cap (0: none) and whether it already failed for this job (1 or 0).
# Of the deployments not cooling and under their cap (those that did not fail for this job
# first, if any), leases the least in flight per unit of weight, ties drawn at random by weight.
# Returns {index (from 1; 0: none free), cooling, full, earliest end of a cooldown (ms; -1:
# unknown)}.
PICK = """
local id, lease, r = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local n = (#KEYS - 1) / 2
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local tied, least = {{}, {}}, {}
local cooling, full, earliest = 0, 0, -1
for i = 1, n do
  local base = 3 + (i - 1) * 4
  local weight, cap = tonumber(ARGV[base + 2]), tonumber(ARGV[base + 3])
  local ttl = redis.call('PTTL', KEYS[2 * i])
  if ttl ~= -2 then
    cooling = cooling + 1
    if ttl > 0 and (earliest < 0 or ttl < earliest) then earliest = ttl end
  else
    local inflight = KEYS[2 * i - 1]
    redis.call('ZREMRANGEBYSCORE', inflight, '-inf', '(' .. now)
    local busy = redis.call('ZCARD', inflight)
    if cap > 0 and busy >= cap then
      full = full + 1
    else
      local g = ARGV[base + 4] == '1' and 2 or 1
      local best = least[g]
      if best == nil or busy * best[2] < best[1] * weight then
        least[g] = {busy, weight}
        tied[g] = {i}
      elseif busy * best[2] == best[1] * weight then
        table.insert(tied[g], i)
      end
    end
  end
end
local among = #tied[1] > 0 and tied[1] or tied[2]
if #among == 0 then return {0, cooling, full, earliest} end
local total = 0
for _, i in ipairs(among) do total = total + tonumber(ARGV[3 + (i - 1) * 4 + 2]) end
local point = r * total
local pick = among[#among]
for _, i in ipairs(among) do
  point = point - tonumber(ARGV[3 + (i - 1) * 4 + 2])
  if point < 0 then
    pick = i
    break
  end
end
local inflight = KEYS[2 * pick - 1]
redis.call('ZADD', inflight, now + lease, id)
if redis.call('PTTL', inflight) < lease + 60000 then
  redis.call('PEXPIRE', inflight, lease + 60000)
end
redis.call('SADD', KEYS[#KEYS], ARGV[3 + (pick - 1) * 4 + 1])
return {pick, cooling, full, earliest}
"""

# KEYS: the deployment's in-flight zset, cool key, fails counter, this minute's stats.
# ARGV: call id, outcome (ok, fail, or none: not the deployment's doing), latency (ms), stats
# kept (s), the route's cooldown (ms), its cap (ms), Retry-After (ms; -1: none), why it cools,
# then the stats' fields: ok, errors, latency.
# Ends a call: its lease released, its stats counted; a failure starts a cooldown unless one
# runs (calls sent before it began do not lengthen it), its Retry-After if it said one, else
# doubling with the failures in a row. Returns the cooldown started (ms), or 0.
FINISH = """
redis.call('ZREM', KEYS[1], ARGV[1])
local outcome = ARGV[2]
if outcome == 'none' then return 0 end
redis.call('HINCRBY', KEYS[4], outcome == 'ok' and ARGV[9] or ARGV[10], 1)
redis.call('HINCRBY', KEYS[4], ARGV[11], ARGV[3])
redis.call('EXPIRE', KEYS[4], ARGV[4])
if outcome == 'ok' then
  redis.call('DEL', KEYS[3])
  return 0
end
local base, cap, retry_after = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local cool = redis.call('PTTL', KEYS[2])
local ms = 0
if cool == -2 then
  local fails = redis.call('INCR', KEYS[3])
  redis.call('PEXPIRE', KEYS[3], math.floor(2 * cap))
  if retry_after >= 0 then
    ms = retry_after
  else
    ms = math.min(base * 2 ^ (fails - 1), cap)
  end
elseif cool > 0 and retry_after > cool then
  ms = retry_after
end
ms = math.floor(ms)
if ms >= 1 then redis.call('SET', KEYS[2], ARGV[8], 'PX', ms) end
return ms
"""

# KEYS: the in-flight zsets of the calls held, one per call. ARGV: lease (ms), the calls' ids.
# Renews the leases of the calls still held (never one released meanwhile).
RENEW = """
local lease = tonumber(ARGV[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, 'XX', now + lease, ARGV[i + 1])
  if redis.call('PTTL', key) < lease + 60000 then
    redis.call('PEXPIRE', key, lease + 60000)
  end
end
return #KEYS
"""
