"""The enabled models and their deployments, read from the catalog (``models``)."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError

from libs.contracts.models import Deployment
from libs.db import PgConnection
from libs.logs import get_logger

log = get_logger(__name__)

_ENABLED = """
SELECT name, version, deployments FROM models WHERE enabled ORDER BY name, version
"""


@dataclass(frozen=True, slots=True)
class CatalogModel:
    name: str
    version: str
    deployments: tuple[Deployment, ...]


async def enabled_models(conn: PgConnection) -> list[CatalogModel]:
    """Every enabled model version; a deployment its row cannot describe is left out, logged."""
    models = []
    for row in await conn.fetch(_ENABLED):
        deployments = []
        for entry in row["deployments"] or []:
            try:
                deployments.append(Deployment.model_validate(entry))
            except ValidationError as exc:
                log.warning(
                    "deployments.invalid_entry",
                    model=row["name"],
                    version=row["version"],
                    error=str(exc.errors(include_url=False, include_input=False)),
                )
        models.append(CatalogModel(row["name"], row["version"], tuple(deployments)))
    return models
