"""Shared resource limits per integration (``openai``, ...), enforced through Redis across every
worker process and replica.

A task whose params name an ``integration`` does not run when it is read: it is *parked* (one
script moves it to that integration's waiting lists and acks its stream entry), so waiting jobs
hold no worker slot and never block other integrations. Workers with a free slot *take* from
the waiting lists: one script checks the integration's concurrency (a sorted set of leases that
expire unless their worker renews them) and its credit budget for the current window, then
pops the next job round-robin across users and leases it. A worker that dies stops renewing;
its lease expires and its job goes back to the head of its user's queue. The final result and
the lease's release are written in one MULTI (see ``ResultWriter``).

Keys: ``libs.contracts.limits``, passed to every script (whole in KEYS, or as the head of the
keys a script finds its way to in ARGV).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from libs.contracts import (
    LIMITS_ACTIVE_KEY,
    LIMITS_KNOWN_KEY,
    LIMITS_LIVE_KEY,
    TASKS_GROUP,
    TASKS_STREAM,
    TaskMessage,
)
from libs.contracts.limits import (
    CONF_BUDGET,
    CONF_MAX,
    CONF_WINDOW,
    conf_key,
    held_key,
    leases_key,
    spent_prefix,
    users_key,
    wait_key,
    wait_prefix,
)
from services.worker._backoff import Backoff
from services.worker._coalesce import Coalescer
from services.worker._slots import Slots
from services.worker.job import HandlerError

_ANONYMOUS = "-"
_TAKE_MOST = 100
"""Most jobs one worker takes from one integration in one round trip."""

_CONF_FIELDS = (CONF_MAX, CONF_BUDGET, CONF_WINDOW)

# KEYS: tasks stream, active, live, known, the user's waiting list, users, conf.
# ARGV: group, entry id, user, job, integration, request id, then conf fields and values.
_PARK = """
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

# KEYS: active, leases, held, users, conf.
# ARGV: waiting lists' head, spent counters' head, lease, ttl (ms), integration, most, conf fields.
# Takes up to ARGV[6] jobs. Returns {0} nothing waiting, {1, 0} at capacity, {1, ms} over budget
# until the window ends in ms, or {2, lease, job, lease, job, ...} for the jobs taken.
_TAKE = """
local wait, spent_head, lease = ARGV[1], ARGV[2], ARGV[3]
local ttl, most = tonumber(ARGV[4]), tonumber(ARGV[6])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local leases, held, users = KEYS[2], KEYS[3], KEYS[4]
for _, dead in ipairs(redis.call('ZRANGEBYSCORE', leases, '-inf', now)) do
  local job = redis.call('HGET', held, dead)
  if job then
    local sep = string.find(job, '\\n', 1, true)
    local user = string.sub(job, 1, sep - 1)
    if redis.call('LPUSH', wait .. user, string.sub(job, sep + 1)) == 1 then
      redis.call('LPUSH', users, user)
    end
    redis.call('SADD', KEYS[1], ARGV[5])
    redis.call('HDEL', held, dead)
  end
  redis.call('ZREM', leases, dead)
end
local conf = redis.call('HMGET', KEYS[5], ARGV[7], ARGV[8], ARGV[9])
local max, budget, window = tonumber(conf[1]), tonumber(conf[2]), tonumber(conf[3])
local taken = {2}
for i = 1, most do
  local user = redis.call('LINDEX', users, 0)
  if not user then
    if i == 1 then
      redis.call('SREM', KEYS[1], ARGV[5])
      return {0}
    end
    break
  end
  if max and redis.call('ZCARD', leases) >= max then
    if i == 1 then return {1, 0} end
    break
  end
  local queue = wait .. user
  local job = redis.call('LINDEX', queue, 0)
  local cost = tonumber(string.sub(job, 1, string.find(job, ' ', 1, true) - 1))
  local spent_key
  if budget and window then
    local index = math.floor(now / window)
    spent_key = spent_head .. index
    local spent = tonumber(redis.call('GET', spent_key) or '0')
    if spent + cost > budget then
      if i == 1 then return {1, (index + 1) * window - now} end
      break
    end
  end
  redis.call('LPOP', users)
  redis.call('LPOP', queue)
  if redis.call('LLEN', queue) > 0 then
    redis.call('RPUSH', users, user)
  end
  if spent_key then
    redis.call('INCRBY', spent_key, cost)
    redis.call('PEXPIRE', spent_key, window * 2)
  end
  local id = lease .. '-' .. i
  redis.call('ZADD', leases, now + ttl, id)
  redis.call('HSET', held, id, user .. '\\n' .. job)
  table.insert(taken, id)
  table.insert(taken, job)
end
return taken
"""

# KEYS: the leases of each lease's integration. ARGV: ttl (ms), then each lease id.
_RENEW = """
local t = redis.call('TIME')
local expiry = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[1])
local renewed = 0
for i = 1, #KEYS do
  renewed = renewed + redis.call('ZADD', KEYS[i], 'XX', 'CH', expiry, ARGV[i + 1])
end
return renewed
"""


@dataclass(frozen=True, slots=True)
class Limits:
    """What a task's params say about its integration's shared limits."""

    integration: str
    max_concurrency: int | None
    budget: int | None
    window_s: float
    cost: int


def limits_of(params: Mapping[str, Any]) -> Limits | None:
    """The limits named by ``params`` (``integration``, ``max_concurrency``, ``budget``,
    ``window_s``, ``cost``), None when it names no integration or sets neither limit (nothing
    would ever wait: the job runs at once); bad values are a HandlerError."""
    integration = params.get("integration")
    if integration is None:
        return None
    if not isinstance(integration, str) or not integration.replace("_", "").isalnum():
        raise HandlerError("invalid params: integration must be a name of letters and digits")
    max_concurrency = _whole(params, "max_concurrency", None)
    budget = _whole(params, "budget", None)
    window = params.get("window_s", 60)
    if isinstance(window, bool) or not isinstance(window, int | float) or window <= 0:
        raise HandlerError("invalid params: window_s must be a number > 0")
    cost = _whole(params, "cost", 1)
    assert cost is not None
    if max_concurrency == 0:
        raise HandlerError("invalid params: max_concurrency must be >= 1")
    if max_concurrency is None and budget is None:
        return None
    return Limits(integration, max_concurrency, budget, float(window), cost)


def _whole(params: Mapping[str, Any], key: str, default: int | None) -> int | None:
    value = params.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise HandlerError(f"invalid params: {key} must be a whole number >= 0")
    return value


@dataclass(frozen=True, slots=True)
class Lease:
    integration: str
    id: str
    request_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class Taken:
    lease: Lease
    task: bytes
    """The task message's JSON, as the relay published it."""


class Limiter:
    def __init__(
        self, redis: Redis, *, lease_ttl_s: float, on_parked: Callable[[list[bytes]], None]
    ) -> None:
        self._redis = redis
        self._lease_ttl_ms = max(1, int(lease_ttl_s * 1000))
        self._on_parked = on_parked
        self._park = redis.register_script(_PARK)
        self._take = redis.register_script(_TAKE)
        self._renew = redis.register_script(_RENEW)
        self._parks = Coalescer(self._park_all)

    async def park(self, entry_id: bytes, task: TaskMessage, raw: bytes, limits: Limits) -> None:
        """Move the task from the stream to its integration's waiting lists, in one script."""
        integration = limits.integration
        user = str(task.user_id) if task.user_id else _ANONYMOUS
        keys = [
            TASKS_STREAM,
            LIMITS_ACTIVE_KEY,
            LIMITS_LIVE_KEY,
            LIMITS_KNOWN_KEY,
            wait_key(integration, user),
            users_key(integration),
            conf_key(integration),
        ]
        conf = (
            "" if limits.max_concurrency is None else limits.max_concurrency,
            "" if limits.budget is None else limits.budget,
            int(limits.window_s * 1000),
        )
        args: list[Any] = [
            TASKS_GROUP,
            entry_id,
            user,
            b"%d " % limits.cost + raw,
            integration,
            str(task.request_id),
        ]
        for field, value in zip(_CONF_FIELDS, conf, strict=True):
            args += [field, value]
        await self._parks((keys, args))
        self._on_parked([entry_id])

    async def _park_all(self, parks: list[tuple[list[str], list[Any]]]) -> list[None]:
        """The parks of every job reading at the same time, in one round trip."""
        pipe = self._redis.pipeline(transaction=False)
        for keys, args in parks:
            await self._park(keys=keys, args=args, client=pipe)
        await pipe.execute()
        return [None] * len(parks)

    async def active(self) -> list[str]:
        """Integrations with jobs waiting."""
        members = await self._redis.smembers(LIMITS_ACTIVE_KEY)
        return sorted(m.decode() if isinstance(m, bytes) else m for m in members)

    async def take(self, integration: str, most: int = 1) -> list[Taken] | float | None:
        """Up to ``most`` next jobs of ``integration``, each with a lease on it; else the seconds
        until its budget allows another (0 at capacity: a lease may end any time), or None when
        nothing waits."""
        reply = await self._take(
            keys=[
                LIMITS_ACTIVE_KEY,
                leases_key(integration),
                held_key(integration),
                users_key(integration),
                conf_key(integration),
            ],
            args=[
                wait_prefix(integration),
                spent_prefix(integration),
                uuid.uuid4().hex,
                self._lease_ttl_ms,
                integration,
                most,
                *_CONF_FIELDS,
            ],
        )
        if reply[0] == 0:
            return None
        if reply[0] == 1:
            return float(reply[1]) / 1000
        taken: list[Taken] = []
        for i in range(1, len(reply), 2):
            raw = reply[i + 1].split(b" ", 1)[1]
            request_id = TaskMessage.model_validate_json(raw).request_id
            taken.append(Taken(Lease(integration, reply[i].decode(), request_id), raw))
        return taken

    async def renew(self, leases: list[Lease]) -> None:
        if not leases:
            return
        await self._renew(
            keys=[leases_key(lease.integration) for lease in leases],
            args=[self._lease_ttl_ms, *(lease.id for lease in leases)],
        )


Recover = Callable[[str, Exception, Backoff], Awaitable[None]]
"""The runner's recovery from a failed loop pass (logs, backs off, recreates groups)."""


class ParkedIntake:
    """Takes parked jobs whose integration has room, one per integration in turn, while this
    process has free slots; an integration over its budget is left alone until its window
    ends."""

    def __init__(self, limiter: Limiter, slots: Slots, start: Callable[[Taken], None]) -> None:
        self._limiter = limiter
        self._slots = slots
        self._start = start
        self._not_before: dict[str, float] = {}

    wanting: bool = False
    """Jobs were waiting when this process last had no slot for them: its reader then blocks
    briefly, so that slots come back to the parked jobs soon."""

    async def run(self, stopping: asyncio.Event, *, poll_s: float, recover: Recover) -> None:
        """Take parked jobs whenever this process has free slots, until ``stopping``."""
        backoff = Backoff()
        while not stopping.is_set():
            await self._slots.wait_free(stopping)
            try:
                taken = await self.take(stopping)
            except Exception as exc:
                await recover("limits", exc, backoff)
                continue
            backoff.reset()
            if not taken:
                try:
                    await asyncio.wait_for(stopping.wait(), poll_s)
                except TimeoutError:
                    pass

    async def take(self, stopping: asyncio.Event) -> int:
        """One round over the integrations with waiting jobs (up to ``_TAKE_MOST`` each, so that
        none waits on another); how many jobs were started.

        When jobs were left waiting for want of a slot, slots are taken before the first round
        trip: the stream reader, which holds every free slot while it blocks, would otherwise
        take them back meanwhile."""
        count = self._slots.take(_TAKE_MOST) if self.wanting else 0
        try:
            active = await self._limiter.active()
        except BaseException:
            self._slots.release(count)
            raise
        self.wanting = False
        now = asyncio.get_running_loop().time()
        taken = 0
        for integration in active:
            if stopping.is_set() or self._not_before.get(integration, 0) > now:
                continue
            count = count or self._slots.take(_TAKE_MOST)
            if not count:
                self.wanting = True
                break
            try:
                got = await self._limiter.take(integration, count)
            except BaseException:
                self._slots.release(count)
                raise
            if isinstance(got, list):
                self._slots.release(count - len(got))
                for one in got:
                    self._start(one)
                taken += len(got)
                count = 0
                continue
            if got:
                self._not_before[integration] = now + got
        self._slots.release(count)
        return taken
