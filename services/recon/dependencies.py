from typing import Annotated

from fastapi import Depends, Request
from redis.asyncio import Redis

from libs.db import PgPool
from services.recon.alerts.policy import AlertPolicySource
from services.recon.completion.service import CompletionLoop
from services.recon.deployments.service import DeploymentsLoop
from services.recon.expiry.service import ExpiryLoop
from services.recon.files.service import FilesCollector
from services.recon.settings import ReconSettings
from services.recon.state import recon_state


def _settings(request: Request) -> ReconSettings:
    return recon_state(request).settings


def _pool(request: Request) -> PgPool:
    return recon_state(request).pool


def _redis(request: Request) -> Redis:
    return recon_state(request).redis


def _completion(request: Request) -> CompletionLoop:
    return recon_state(request).completion


def _expiry(request: Request) -> ExpiryLoop:
    return recon_state(request).expiry


def _files(request: Request) -> FilesCollector:
    return recon_state(request).files


def _deployments(request: Request) -> DeploymentsLoop:
    return recon_state(request).deployments


def _alert_policy(request: Request) -> AlertPolicySource:
    return recon_state(request).alert_policy


SettingsDep = Annotated[ReconSettings, Depends(_settings)]
PoolDep = Annotated[PgPool, Depends(_pool)]
RedisDep = Annotated[Redis, Depends(_redis)]
CompletionDep = Annotated[CompletionLoop, Depends(_completion)]
ExpiryDep = Annotated[ExpiryLoop, Depends(_expiry)]
FilesDep = Annotated[FilesCollector, Depends(_files)]
DeploymentsDep = Annotated[DeploymentsLoop, Depends(_deployments)]
AlertPolicyDep = Annotated[AlertPolicySource, Depends(_alert_policy)]
