from typing import Annotated, cast

from fastapi import Depends, Request
from redis.asyncio import Redis

from libs.db import PgPool
from services.recon.alerts.policy import AlertPolicySource
from services.recon.completion.service import CompletionLoop
from services.recon.expiry.service import ExpiryLoop
from services.recon.settings import ReconSettings


def _settings(request: Request) -> ReconSettings:
    return cast(ReconSettings, request.state.settings)


def _pool(request: Request) -> PgPool:
    return cast(PgPool, request.state.pool)


def _redis(request: Request) -> Redis:
    return cast(Redis, request.state.redis)


def _completion(request: Request) -> CompletionLoop:
    return cast(CompletionLoop, request.state.completion)


def _expiry(request: Request) -> ExpiryLoop:
    return cast(ExpiryLoop, request.state.expiry)


def _alert_policy(request: Request) -> AlertPolicySource:
    return cast(AlertPolicySource, request.state.alert_policy)


SettingsDep = Annotated[ReconSettings, Depends(_settings)]
PoolDep = Annotated[PgPool, Depends(_pool)]
RedisDep = Annotated[Redis, Depends(_redis)]
CompletionDep = Annotated[CompletionLoop, Depends(_completion)]
ExpiryDep = Annotated[ExpiryLoop, Depends(_expiry)]
AlertPolicyDep = Annotated[AlertPolicySource, Depends(_alert_policy)]
