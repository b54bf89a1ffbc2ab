from functools import lru_cache
from typing import Literal

from pydantic import Field, field_validator

from libs.contracts.tiers import TIERS, Tier
from libs.settings import CommonSettings


class WorkerSettings(CommonSettings):
    """Worker process settings; every field reads ``RELAI_<NAME>`` (e.g. ``RELAI_WORKER_BATCH``)."""

    worker_concurrency: int = Field(default=1000, ge=1)
    """Jobs in flight per process."""
    worker_batch: int = Field(default=100, ge=1)
    """Most entries taken by one XREADGROUP or XAUTOCLAIM."""
    worker_block_ms: int = Field(default=1000, ge=1, le=4000)
    """How long one XREADGROUP waits, in milliseconds (at most 4000: kept under the Redis
    client's 5 s socket timeout)."""
    worker_visibility_timeout_s: float = Field(default=30.0, gt=0)
    """A pending entry idle longer than this belongs to a dead worker and is reclaimed by
    another consumer (a live worker refreshes the idle time of its entries every third of it)."""
    worker_reclaim_interval_s: float = Field(default=5.0, gt=0)
    """How often a worker looks for entries left pending by a dead one."""
    worker_drain_timeout_s: float = Field(default=30.0, ge=0)
    """On SIGTERM, how long in-flight jobs may finish before they are released."""
    worker_job_timeout_s: float = Field(default=300.0, gt=0)
    """A handler running longer than this fails the job with ``TimeoutError``; an offer's or
    handler's ``params.job_timeout_s`` may set less, never more."""
    worker_max_crashes: int = Field(default=3, ge=1)
    """A task whose worker died or stalled this many times while running it in quarantine (alone
    among quarantined tasks, from its third delivery on) is a poison message: it goes to the
    dead-letters stream and its request fails (and is refunded) instead of running again."""
    worker_max_result_bytes: int = Field(default=50 * 1024 * 1024, ge=1)
    """The most bytes one file result may have (a handler's ``FileOutput``); a larger one fails
    its job."""
    worker_limits_poll_s: float = Field(default=0.05, gt=0)
    """How often a worker with free slots looks for jobs waiting on an integration's limits."""
    worker_scheduling: Literal["fifo", "fair"] = "fifo"
    """``fifo`` runs the tasks stream in arrival order. ``fair`` moves every task from the stream
    to its user's waiting list as soon as it is read (holding no slot) and runs the users' jobs
    round-robin, across every worker process, like an integration's (see ``_limits``): one
    user's burst no longer holds back the others'. Under ``fair`` each priority tier has a queue
    of its own (``RELAI_WORKER_TIER_WEIGHTS``); under ``fifo`` every job is served at
    ``default``. Every worker of a deployment should use the same value."""
    worker_max_running_per_user: int = Field(default=0, ge=0)
    """The most parked jobs (fair scheduling's, or an integration's) one user runs at once
    across every worker, per queue; 0 for no cap. Counted from live leases, so a dead worker's
    count until they expire and none can leak. Every worker should use the same value."""
    worker_tier_weights: dict[Tier, int] = {
        "priority": 16,
        "default": 4,
        "flex": 1,
    }
    """Under fair scheduling, each priority tier's share of a worker's slots while several tiers
    have jobs waiting (a JSON object naming every tier, each weight >= 1): with the defaults, a
    steady ``priority`` load leaves ``flex`` about 1 slot in 17, and ``priority`` jobs submitted
    behind any backlog of the others start as the next slots free. A tier alone takes every
    slot. Jobs under an integration's limits wait in its queue whatever their tier."""
    worker_name: str | None = None
    """Consumer name in the group; ``<hostname>-<pid>`` when unset."""
    worker_metrics_port: int = Field(default=9101, ge=0, le=65535)
    """Port of this process's Prometheus ``/metrics``; 0 disables it, and a port already taken
    only warns."""

    @field_validator("worker_tier_weights")
    @classmethod
    def _every_tier_weighed(cls, value: dict[Tier, int]) -> dict[Tier, int]:
        missing = [tier for tier in TIERS if tier not in value]
        if missing:
            raise ValueError(f"every tier needs a weight; missing: {', '.join(missing)}")
        if min(value.values()) < 1:
            raise ValueError("every tier's weight must be at least 1")
        return value


@lru_cache
def get_settings() -> WorkerSettings:
    return WorkerSettings()
