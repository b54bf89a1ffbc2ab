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

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

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
    LIMITS_WEIGHTS_KEY,
    QUEUE_TIERS,
    TIER_QUEUES,
    conf_key,
    held_key,
    leases_key,
    running_key,
    running_prefix,
    spent_prefix,
    turns_key,
    users_key,
    wait_key,
    wait_prefix,
)
from libs.contracts.tiers import DEFAULT_TIER, Tier
from services.worker._coalesce import Coalescer
from services.worker._limits_scripts import PARK, RENEW, TAKE
from services.worker.job import HandlerError

_ANONYMOUS = "-"
_CONF_FIELDS = (CONF_MAX, CONF_BUDGET, CONF_WINDOW)


@dataclass(frozen=True, slots=True)
class Limits:
    """What a task's params say about its integration's shared limits."""

    integration: str
    max_concurrency: int | None
    budget: int | None
    window_s: float
    cost: int


TIER_LIMITS: dict[Tier, Limits] = {
    tier: Limits(queue, None, None, 60.0, 1) for tier, queue in TIER_QUEUES.items()
}
"""Where a job without an integration waits under fair scheduling, by the tier it asks for: no
cap, no budget, its user served in turn with the others; the tiers' queues are taken by weight
(``_stride``)."""

FAIR = TIER_LIMITS[DEFAULT_TIER]
"""The ``default`` tier's: where every job without an integration waited before tiers."""


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
    user: str = _ANONYMOUS

    @property
    def tier(self) -> Tier:
        """The tier its job is served at: its tier's queue's (fair scheduling), or ``default``
        under an integration's limits, where tiers are not honoured."""
        return QUEUE_TIERS.get(self.integration, DEFAULT_TIER)


@dataclass(frozen=True, slots=True)
class Taken:
    lease: Lease
    task: bytes
    """The task message's JSON, as the relay published it."""
    expired: int = 0
    """Leases on this job that expired (its worker died or stalled while holding it)."""
    crashes: int = 0
    """Of those, the ones on runs in quarantine: each took its worker down itself."""
    message: TaskMessage | None = None
    """``task`` decoded (once: the run uses it as it is)."""


def _taken(integration: str, lease_id: bytes, user: bytes, job: bytes) -> Taken:
    """A taken job from the take script's ``{cost}[,{expired},{crashes}] {task}``."""
    head, raw = job.split(b" ", 1)
    _cost, expired, crashes = (head.split(b",") + [b"0", b"0"])[:3]
    message = TaskMessage.model_validate_json(raw)
    lease = Lease(integration, lease_id.decode(), message.request_id, user.decode())
    return Taken(lease, raw, int(expired), int(crashes), message)


class Limiter:
    def __init__(
        self,
        redis: Redis,
        *,
        lease_ttl_s: float,
        on_parked: Callable[[list[bytes]], None],
        quarantine_after: int = 2,
        max_running_per_user: int = 0,
    ) -> None:
        """A job taken after ``quarantine_after`` of its leases expired runs in quarantine; no
        user runs more than ``max_running_per_user`` jobs of one queue at once (0: no cap)."""
        self._redis = redis
        self._quarantine_after = quarantine_after
        self._max_running_per_user = max_running_per_user
        self._lease_ttl_ms = max(1, int(lease_ttl_s * 1000))
        self._on_parked = on_parked
        self._park = redis.register_script(PARK)
        self._take = redis.register_script(TAKE)
        self._renew = redis.register_script(RENEW)
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
        """The parks of every job reading at the same time, in one round trip: ``EVALSHA``s
        in a pipeline, without the ``SCRIPT EXISTS`` round trip redis-py's pipelines make
        before each batch of scripts. A Redis that does not have the script (restarted, failed
        over) refuses every one of them alike, and none ran: it is loaded, and the batch sent
        again."""
        for attempt in range(2):
            pipe = self._redis.pipeline(transaction=False)
            for keys, args in parks:
                pipe.execute_command("EVALSHA", self._park.sha, len(keys), *keys, *args)
            try:
                await pipe.execute()
            except NoScriptError:
                if attempt:
                    raise
                await self._redis.script_load(PARK)
                continue
            break
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
                LIMITS_WEIGHTS_KEY,
                turns_key(integration),
            ],
            args=[
                wait_prefix(integration),
                spent_prefix(integration),
                uuid.uuid4().hex,
                self._lease_ttl_ms,
                integration,
                most,
                *_CONF_FIELDS,
                self._quarantine_after,
                running_prefix(integration),
                self._max_running_per_user,
            ],
        )
        if reply[0] == 0:
            return None
        if reply[0] == 1:
            return float(reply[1]) / 1000
        return [_taken(integration, *reply[i : i + 3]) for i in range(1, len(reply), 3)]

    async def renew(self, leases: list[Lease]) -> None:
        if not leases:
            return
        keys = []
        for lease in leases:
            keys += [leases_key(lease.integration), running_key(lease.integration, lease.user)]
        await self._renew(keys=keys, args=[self._lease_ttl_ms, *(lease.id for lease in leases)])
