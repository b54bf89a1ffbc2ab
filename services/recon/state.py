"""What recon builds at startup and its endpoints reach, read through ``recon_state``: one typed
object under one key, so that renaming a resource is a type error, not a failure at run time."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from starlette.requests import HTTPConnection

from libs.db import PgPool
from services.recon.alerts.policy import AlertPolicySource
from services.recon.completion.service import CompletionLoop
from services.recon.deployments.service import DeploymentsLoop
from services.recon.expiry.service import ExpiryLoop
from services.recon.files.service import FilesCollector
from services.recon.settings import ReconSettings

_KEY = "recon"


@dataclass(frozen=True, slots=True)
class ReconState:
    settings: ReconSettings
    pool: PgPool
    redis: Redis
    completion: CompletionLoop
    expiry: ExpiryLoop
    files: FilesCollector
    deployments: DeploymentsLoop
    alert_policy: AlertPolicySource

    def lifespan_state(self) -> dict[str, Any]:
        """What the lifespan yields: Starlette hands it to every request."""
        return {_KEY: self}


def recon_state(conn: HTTPConnection) -> ReconState:
    state: ReconState = conn.scope["state"][_KEY]
    return state
