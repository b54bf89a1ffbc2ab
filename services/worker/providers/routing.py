"""Routing a job of a model across the model's deployments (``libs.contracts.models``).

Each call goes to the deployment with the fewest calls in flight per unit of weight, among those
not cooling down and under their ``max_concurrency`` (ties drawn at random by weight, so that
idle traffic splits by weight), under a lease in Redis that the worker renews while the call
runs (with its heartbeat), so that a dead worker's calls stop counting soon. When none is free
the call waits for one, within the job's timeout.

A call that failed goes to another deployment (or, if none other is free, the same once its
cooldown ends) only when the first did not answer: refused or dropped connections, 5xx, 429.
A timeout after the request was sent is not sent again unless the route is ``idempotent``: the
first may still run, and bill. A 4xx or a malformed answer is the request's fault: no cooldown,
no failover. ``route.max_attempts`` bounds the calls of each of the job's provider requests.
"""

import asyncio
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
from redis.asyncio import Redis
from redis.exceptions import RedisError

from libs.contracts.models import (
    COOLDOWN_MAX_FACTOR,
    DEPLOY_KNOWN_KEY,
    STAT_ERRORS,
    STAT_LATENCY_MS,
    STAT_OK,
    STATS_KEEP_S,
    Deployment,
    Route,
    cool_key,
    fails_key,
    inflight_key,
    minute_key,
)
from libs.logs import get_logger
from services.worker.metrics import (
    DEPLOYMENT_CALL_SECONDS,
    DEPLOYMENT_CALLS,
    DEPLOYMENT_FAILOVERS,
    DEPLOYMENT_FALLBACKS,
)
from services.worker.providers._routing_scripts import FINISH, PICK, RENEW
from services.worker.providers.errors import (
    BrokenStreamError,
    PermanentError,
    ProviderError,
    TransientError,
)
from services.worker.providers.params import ProviderParams

log = get_logger(__name__)

T = TypeVar("T")

_WAIT_FIRST_S = 0.02
_WAIT_MAX_S = 0.25
"""How often a call waiting for a deployment under its cap looks again (doubling up to this)."""


class RouteError(ProviderError):
    """A job of a model found no deployment to answer it."""

    def __init__(self, message: str, *, fall_back: bool = True) -> None:
        super().__init__(message)
        self.fall_back = fall_back
        """Whether another model may be called instead: not after a call that may still be
        running."""


@dataclass(frozen=True, slots=True)
class _Picked:
    name: str | None
    cooling: int
    full: int
    earliest_ms: int
    """When the first cooldown ends (-1: unknown)."""


def outcome_of(exc: BaseException | None) -> str:
    """The ``outcome`` label of a call that ended with ``exc`` (None: it succeeded)."""
    if exc is None:
        return "ok"
    if not isinstance(exc, TransientError):
        return "rejected"
    if exc.status == 429:
        return "rate_limited"
    if isinstance(exc.__cause__, httpx.TimeoutException):
        return "timeout"
    if isinstance(exc.__cause__, httpx.TransportError):
        return "connection"
    return "error"


def cooldown_ms(route: Route) -> tuple[int, int]:
    """The route's first cooldown and its longest, in milliseconds."""
    base = round(route.cooldown_s * 1000)
    return base, base * COOLDOWN_MAX_FACTOR


class Routes:
    """The deployments' shared state in Redis: leases, cooldowns, health. One per worker,
    whose heartbeat calls ``renew`` more often than every ``lease_s``."""

    def __init__(
        self, redis: Redis, *, lease_s: float = 30.0, rng: random.Random | None = None
    ) -> None:
        self._redis = redis
        self._pick = redis.register_script(PICK)
        self._finish = redis.register_script(FINISH)
        self._renew = redis.register_script(RENEW)
        self._lease_ms = max(1, round(lease_s * 1000))
        self._rng = rng or random.Random()
        self._held: dict[str, str] = {}
        """The deployment of each call of this worker under a lease, by call id."""

    def router(
        self, route: Route, params: Mapping[str, Mapping[str, Any]], *, timeout_s: float
    ) -> "Router":
        """The router of one job: ``params`` are each deployment's (by integration), only
        those configured on this worker; ``timeout_s`` is the job's."""
        return Router(self, route, params, timeout_s=timeout_s)

    async def pick(self, deployments: list[Deployment], failed: set[str], call_id: str) -> _Picked:
        """Lease the deployment to call (see ``PICK``), if one is free."""
        keys: list[str] = []
        args: list[str | int | float] = [call_id, self._lease_ms, self._rng.random()]
        for d in deployments:
            keys += [inflight_key(d.integration), cool_key(d.integration)]
            failed_flag = 1 if d.integration in failed else 0
            args += [d.integration, d.weight, d.max_concurrency or 0, failed_flag]
        keys.append(DEPLOY_KNOWN_KEY)
        index, cooling, full, earliest = await self._pick(keys=keys, args=args)
        name = deployments[int(index) - 1].integration if int(index) else None
        if name is not None:
            self._held[call_id] = name
        return _Picked(name, int(cooling), int(full), int(earliest))

    async def renew(self) -> None:
        """Renew the leases of this worker's calls in flight."""
        held = list(self._held.items())
        if held:
            keys = [inflight_key(name) for _, name in held]
            await self._renew(keys=keys, args=[self._lease_ms, *(i for i, _ in held)])

    async def finish(
        self,
        name: str,
        call_id: str,
        *,
        outcome: str,
        latency_s: float,
        route: Route,
        retry_after_s: float | None,
        reason: str,
    ) -> int:
        """Release the call's lease and count it: ``outcome`` ok, fail (against the
        deployment) or none. Returns the cooldown it started (ms), or 0."""
        self._held.pop(call_id, None)
        base, cap = cooldown_ms(route)
        keys = [inflight_key(name), cool_key(name), fails_key(name)]
        keys.append(minute_key(name, int(time.time()) // 60))
        retry_after = -1 if retry_after_s is None else round(retry_after_s * 1000)
        args: list[str | int] = [call_id, outcome, round(latency_s * 1000), STATS_KEEP_S]
        args += [base, cap, retry_after, reason[:200], STAT_OK, STAT_ERRORS, STAT_LATENCY_MS]
        return int(await self._finish(keys=keys, args=args))


class Router:
    """Where one job's provider calls go (``services.worker.job.CallRouter``)."""

    def __init__(
        self,
        routes: Routes,
        route: Route,
        params: Mapping[str, Mapping[str, Any]],
        *,
        timeout_s: float,
    ) -> None:
        self._routes = routes
        self._route = route
        self._params = params
        seen: set[str] = set()
        self._deployments: list[Deployment] = []
        for d in route.deployments:
            if d.integration in params and d.integration not in seen:
                seen.add(d.integration)
                self._deployments.append(d)
        self._deadline = time.monotonic() + timeout_s
        self._retry_after_max_s = {name: _retry_after_max_s(p) for name, p in params.items()}
        self._deployment: str | None = None

    @property
    def deployment(self) -> str | None:
        return self._deployment

    @property
    def model(self) -> str:
        return self._route.model

    @property
    def served(self) -> str:
        """``name@version`` of the model this router calls."""
        return self._route.ref

    async def call(self, attempt: Callable[[Mapping[str, Any]], Awaitable[T]]) -> T:
        tried: list[str] = []
        last: TransientError | None = None
        while True:
            name, call_id = await self._take(set(tried), tried, last)
            tried.append(name)
            self._deployment = name
            try:
                return await self._one(name, call_id, attempt)
            except TransientError as exc:
                last = exc
                self._check_failover(exc, name, tried)
            DEPLOYMENT_FAILOVERS.labels(self.model).inc()
            log.info("deployment.failover", model=self.model, deployment=name, error=str(last))

    def _check_failover(self, exc: TransientError, name: str, tried: list[str]) -> None:
        """Raise unless the failed call may be sent again."""
        if exc.maybe_running and not self._route.idempotent:
            raise RouteError(
                f"model {self.model}: deployment {name} timed out after the request was sent "
                f"({exc}); not sent again, since the model is not idempotent and the first call "
                "may still be running",
                fall_back=False,
            ) from exc
        if len(tried) >= self._route.max_attempts:
            raise RouteError(
                f"model {self.model}: {len(tried)} calls failed (deployments tried: "
                f"{', '.join(tried)}); last error: {exc}"
            ) from exc

    async def _one(
        self, name: str, call_id: str, attempt: Callable[[Mapping[str, Any]], Awaitable[T]]
    ) -> T:
        start = time.perf_counter()
        error: BaseException | None = None
        ended = False
        try:
            result = await attempt(self._params[name])
            ended = True
            return result
        except ProviderError as exc:
            # A stream that broke after partial output ends the job, but it is the deployment's.
            error = exc.__cause__ if isinstance(exc, BrokenStreamError) else exc
            ended = True
            raise
        finally:
            await self._end(name, call_id, error if ended else None, ended, start)

    async def _end(
        self, name: str, call_id: str, error: BaseException | None, ended: bool, start: float
    ) -> None:
        latency = time.perf_counter() - start
        outcome = "none"
        retry_after: float | None = None
        if ended:
            label = outcome_of(error)
            DEPLOYMENT_CALLS.labels(self.model, name, label).inc()
            DEPLOYMENT_CALL_SECONDS.labels(self.model, name).observe(latency)
            if label == "ok":
                outcome = "ok"
            elif isinstance(error, TransientError):
                outcome = "fail"
                if error.retry_after is not None:
                    retry_after = min(error.retry_after, self._retry_after_max_s[name])
        try:
            cooling_ms = await self._routes.finish(
                name,
                call_id,
                outcome=outcome,
                latency_s=latency,
                route=self._route,
                retry_after_s=retry_after,
                reason=str(error) if error is not None else "",
            )
        except (RedisError, OSError) as exc:
            # Its lease, no longer renewed, expires; the call's stats are lost.
            log.warning("deployment.finish_failed", deployment=name, error=str(exc))
            return
        if cooling_ms:
            log.info(
                "deployment.cooling", model=self.model, deployment=name, cooldown_ms=cooling_ms
            )

    async def _take(
        self, failed: set[str], tried: list[str], last: TransientError | None
    ) -> tuple[str, str]:
        """A deployment leased for one call, and the lease's id: waits while none is free."""
        call_id = uuid.uuid4().hex
        wait_s = _WAIT_FIRST_S
        while True:
            remaining = self._deadline - time.monotonic()
            picked = await self._routes.pick(self._deployments, failed, call_id)
            if picked.name is not None:
                return picked.name, call_id
            if picked.full == 0:  # every one cooling down
                cools_s = picked.earliest_ms / 1000
                if picked.earliest_ms < 0 or cools_s >= remaining:
                    raise RouteError(self._down(cools_s, remaining, tried, last))
                await asyncio.sleep(cools_s + random.uniform(0.0, 0.02))
                continue
            if remaining <= 0:
                raise RouteError(
                    f"model {self.model}: no deployment was free within the job's timeout "
                    "(each at its max_concurrency or cooling down)"
                )
            await asyncio.sleep(min(wait_s * (0.5 + random.random()), remaining))
            wait_s = min(wait_s * 2, _WAIT_MAX_S)

    def _down(
        self, cools_s: float, remaining: float, tried: list[str], last: TransientError | None
    ) -> str:
        names = ", ".join(d.integration for d in self._deployments)
        when = "" if cools_s < 0 else f"; the first back in {cools_s:.1f}s"
        message = (
            f"model {self.model}: all its deployments are down ({names} cooling down{when}, "
            f"the job has {max(remaining, 0):.1f}s left)"
        )
        if tried:
            message += f"; deployments tried: {', '.join(tried)}"
        if last is not None:
            message += f"; last error: {last}"
        return message


class Chain:
    """A job's routers in order, the model's then its fallbacks' (``Route.fallbacks``): the
    next is called only when every call of the one before failed without an answer."""

    def __init__(self, routers: list[Router]) -> None:
        assert routers
        self._routers = routers
        self._current = routers[0]

    @property
    def deployment(self) -> str | None:
        return self._current.deployment

    @property
    def served(self) -> str | None:
        return self._current.served if self._current.deployment is not None else None

    async def call(self, attempt: Callable[[Mapping[str, Any]], Awaitable[T]]) -> T:
        for router in self._routers:
            self._current = router
            try:
                return await router.call(attempt)
            except RouteError as exc:
                if not exc.fall_back or router is self._routers[-1]:
                    raise
                log.info("model.fallback", model=router.served, error=str(exc))
                DEPLOYMENT_FALLBACKS.labels(router.model).inc()
        raise AssertionError("unreachable")


def _retry_after_max_s(params: Mapping[str, Any]) -> float:
    try:
        return ProviderParams.parse(params).retry_after_max_s
    except PermanentError:
        return ProviderParams().retry_after_max_s
