"""Models and their deployments, as a job carries them and as workers and recon share their
health in Redis: the one place both are named.

A **model** (``llama3``, version ``2024-07``) is catalog data: its context window, its output
limit, and the **deployments** that serve it, each an operator integration (a base URL and a key
the catalog names but never sees) with a weight and a concurrency cap of its own. The API puts a
job's ``Route`` in its task when it is submitted; the worker picks a deployment for each call and
fails over to another on errors that prove the first did not answer.

Per deployment (an integration's name), each Redis key is ``DEPLOY_PREFIX + name + part``:

- ``INFLIGHT``: zset, call id → expiry (ms): the calls running on it, one lease each, so that a
  dead worker's calls stop counting when their lease expires (no counter to leak);
- ``COOL``: string with an expiry: the deployment is cooling down (its value says why) until the
  key expires; nothing new is sent to it meanwhile;
- ``FAILS``: counter with an expiry: consecutive failures, which lengthen the next cooldown;
- ``MINUTE`` + minute index (``now_s // 60``): hash of the calls that ended in that minute,
  fields ``STAT_OK``, ``STAT_ERRORS`` and ``STAT_LATENCY_MS`` (their summed latency), kept
  ``STATS_KEEP_S``.

``DEPLOY_KNOWN_KEY`` is the set of every deployment a call has been sent to: where recon looks.
"""

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

DeploymentName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_]+$")]
"""An operator integration's name (``libs.config.schemas.IntegrationName``)."""


class Deployment(BaseModel):
    """One server (or provider account) a model runs on."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    integration: DeploymentName
    """The operator integration that says where it is and how to sign in."""
    weight: int = Field(default=1, ge=1, le=1000)
    """Its share of the model's calls: the least busy per unit of weight is picked."""
    max_concurrency: int | None = Field(default=None, ge=1)
    """The most calls it runs at once, across every worker; None: no cap."""
    model: str | None = Field(default=None, min_length=1, max_length=200)
    """The name this server knows the model by, when it is not the model's ``provider_model``."""


class Route(BaseModel):
    """Where a job of a model may run, put in its task at submit (``TaskMessage.route``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str
    """The model's catalog name."""
    version: str
    """The version the request was routed to (the model's default unless the offer pins one)."""
    provider_model: str
    """The name sent to the provider (``params.model``), unless a deployment says its own."""
    deployments: list[Deployment] = Field(min_length=1)
    max_attempts: int = Field(default=4, ge=1, le=50)
    """Calls made in all, across deployments, before the job fails."""
    cooldown_s: float = Field(default=30.0, gt=0, le=3600)
    """How long a failing deployment gets nothing new (doubling while it keeps failing, up to
    ``COOLDOWN_MAX_FACTOR`` times), unless it said ``Retry-After``."""
    idempotent: bool = False
    """Whether a call that timed out after it was sent may be sent again, to this deployment or
    another: the first may still be running (and billing). False: the job fails instead."""
    fallbacks: list["Route"] = Field(default_factory=list, max_length=3)
    """Other models to call, in order, when every deployment of this one failed without an
    answer (never after a call that may still be running); each without fallbacks of its own.
    The result names the model that answered (``ResultMessage.model``)."""

    @property
    def ref(self) -> str:
        return f"{self.model}@{self.version}"


DEPLOY_PREFIX = "relai:deploy:"
DEPLOY_KNOWN_KEY = f"{DEPLOY_PREFIX}known"
"""Set of every deployment a call has been sent to."""

INFLIGHT = ":inflight"
COOL = ":cool"
FAILS = ":fails"
MINUTE = ":m:"

STAT_OK = "ok"
STAT_ERRORS = "errors"
STAT_LATENCY_MS = "latency_ms"
STATS_KEEP_S = 15 * 60
COOLDOWN_MAX_FACTOR = 16


def inflight_key(name: str) -> str:
    return f"{DEPLOY_PREFIX}{name}{INFLIGHT}"


def cool_key(name: str) -> str:
    return f"{DEPLOY_PREFIX}{name}{COOL}"


def fails_key(name: str) -> str:
    return f"{DEPLOY_PREFIX}{name}{FAILS}"


def minute_key(name: str, minute: int) -> str:
    return f"{DEPLOY_PREFIX}{name}{MINUTE}{minute}"
