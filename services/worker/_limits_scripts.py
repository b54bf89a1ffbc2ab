"""The Redis scripts of the limits shared per integration and of fair scheduling
(``_limits``): park a task, take waiting jobs under leases, renew leases. Keys and their parts
come from ``libs.contracts.limits``."""

# KEYS: tasks stream, active, live, known, the user's waiting list, users, conf.
# ARGV: group, entry id, user, job, integration, request id, then conf fields and values.
PARK = """
if redis.call('RPUSH', KEYS[5], ARGV[4]) == 1 then
  redis.call('RPUSH', KEYS[6], ARGV[3])
end
redis.call('HSET', KEYS[7], unpack(ARGV, 7))
redis.call('SADD', KEYS[2], ARGV[5])
redis.call('SADD', KEYS[3], ARGV[6])
redis.call('SADD', KEYS[4], ARGV[5])
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
return 1
"""

# A waiting job is ``{cost} {task}``, or ``{cost},{expired},{crashes} {task}`` once a lease on
# it expired: ``expired`` leases in all, ``crashes`` of them on runs in quarantine (taken with
# ``expired`` >= ARGV[10]), which the worker runs alone (see ``_dead_letters``).

# A user's turn is as many jobs as their weight (the weights' mirror, ``libs.accounts.weights``;
# 1 when absent): one of weight w stays at the head of the round-robin until w of their jobs
# were taken in a row (``turns`` counts them), then goes to the back.

# KEYS: active, leases, held, users, conf, weights, turns.
# ARGV: waiting lists' head, spent counters' head, lease, ttl (ms), integration, most, conf
# fields, the expired leases from which a run is in quarantine, running sets' head, the most
# jobs one user may run at once (0: no cap).
# Takes up to ARGV[6] jobs. Returns {0} nothing waiting, {1, 0} at capacity (or every waiting
# user at theirs), {1, ms} over budget until the window ends in ms, or
# {2, lease, user, job, lease, user, job, ...} for the jobs taken.
TAKE = """
local wait, spent_head, lease = ARGV[1], ARGV[2], ARGV[3]
local ttl, most, quarantine = tonumber(ARGV[4]), tonumber(ARGV[6]), tonumber(ARGV[10])
local running_head, per_user = ARGV[11], tonumber(ARGV[12])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local leases, held, users = KEYS[2], KEYS[3], KEYS[4]
local function parse(job)
  local sep = string.find(job, ' ', 1, true)
  local cost, expired, crashes = string.match(string.sub(job, 1, sep - 1), '^(%d+),?(%d*),?(%d*)$')
  return tonumber(cost), tonumber(expired) or 0, tonumber(crashes) or 0, string.sub(job, sep + 1)
end
for _, dead in ipairs(redis.call('ZRANGEBYSCORE', leases, '-inf', now)) do
  local job = redis.call('HGET', held, dead)
  if job then
    local sep = string.find(job, '\\n', 1, true)
    local user = string.sub(job, 1, sep - 1)
    local cost, expired, crashes, task = parse(string.sub(job, sep + 1))
    if expired >= quarantine then crashes = crashes + 1 end
    local again = cost .. ',' .. (expired + 1) .. ',' .. crashes .. ' ' .. task
    if redis.call('LPUSH', wait .. user, again) == 1 then
      redis.call('LPUSH', users, user)
    end
    redis.call('SADD', KEYS[1], ARGV[5])
    redis.call('HDEL', held, dead)
    redis.call('ZREM', running_head .. user, dead)
  end
  redis.call('ZREM', leases, dead)
end
local conf = redis.call('HMGET', KEYS[5], ARGV[7], ARGV[8], ARGV[9])
local max, budget, window = tonumber(conf[1]), tonumber(conf[2]), tonumber(conf[3])
local taken = {2}
local n, skipped = 0, 0
while n < most do
  local user = redis.call('LINDEX', users, 0)
  if not user then
    if n == 0 then
      -- Active while leases live, so that one whose worker died is found when it expires.
      if redis.call('ZCARD', leases) == 0 then
        redis.call('SREM', KEYS[1], ARGV[5])
      end
      return {0}
    end
    break
  end
  if max and redis.call('ZCARD', leases) >= max then
    if n == 0 then return {1, 0} end
    break
  end
  local running = running_head .. user
  if per_user > 0 and redis.call('ZCOUNT', running, now, '+inf') >= per_user then
    -- This user runs their most already (live leases only: a dead worker's count as long as
    -- they would hold the job): their turn passes to the next user.
    skipped = skipped + 1
    if skipped >= redis.call('LLEN', users) then
      if n == 0 then return {1, 0} end
      break
    end
    redis.call('HDEL', KEYS[7], user)
    redis.call('RPUSH', users, redis.call('LPOP', users))
  else
    local queue = wait .. user
    local job = redis.call('LINDEX', queue, 0)
    local cost = parse(job)
    local spent_key
    if budget and window then
      local index = math.floor(now / window)
      spent_key = spent_head .. index
      local spent = tonumber(redis.call('GET', spent_key) or '0')
      if spent + cost > budget then
        if n == 0 then return {1, (index + 1) * window - now} end
        break
      end
    end
    redis.call('LPOP', users)
    redis.call('LPOP', queue)
    if redis.call('LLEN', queue) > 0 then
      local weight = tonumber(redis.call('HGET', KEYS[6], user) or '1') or 1
      if weight > 1 and redis.call('HINCRBY', KEYS[7], user, 1) < weight then
        redis.call('LPUSH', users, user)
      else
        redis.call('HDEL', KEYS[7], user)
        redis.call('RPUSH', users, user)
      end
    else
      redis.call('HDEL', KEYS[7], user)
    end
    if spent_key then
      redis.call('INCRBY', spent_key, cost)
      redis.call('PEXPIRE', spent_key, window * 2)
    end
    n, skipped = n + 1, 0
    local id = lease .. '-' .. n
    redis.call('ZADD', leases, now + ttl, id)
    redis.call('ZADD', running, now + ttl, id)
    redis.call('HSET', held, id, user .. '\\n' .. job)
    table.insert(taken, id)
    table.insert(taken, user)
    table.insert(taken, job)
  end
end
return taken
"""

# KEYS: per lease, its integration's leases and its user's running set. ARGV: ttl (ms), then
# each lease id.
RENEW = """
local t = redis.call('TIME')
local expiry = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[1])
local renewed = 0
for i = 1, #ARGV - 1 do
  renewed = renewed + redis.call('ZADD', KEYS[2 * i - 1], 'XX', 'CH', expiry, ARGV[i + 1])
  redis.call('ZADD', KEYS[2 * i], 'XX', expiry, ARGV[i + 1])
end
return renewed
"""
