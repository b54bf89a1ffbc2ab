"""The schema. Runtime queries are written with asyncpg in each service's repository modules;
these models are the single description of the tables, used by Alembic and by tooling."""

from libs.db.models._base import NAMING, STATUSES, Base
from libs.db.models.accounts import ApiKey, Identity, User
from libs.db.models.catalog import Deal, Handler, Model, Offer, PromptTemplate
from libs.db.models.operations import (
    Config,
    ConfigActivation,
    ConfigReveal,
    ConfigVersion,
    ReconMark,
    UsageHour,
)
from libs.db.models.requests import CreditEntry, OutboxEntry, Request, RequestStep

__all__ = [
    "ApiKey",
    "Base",
    "Config",
    "ConfigActivation",
    "ConfigReveal",
    "ConfigVersion",
    "CreditEntry",
    "Deal",
    "Handler",
    "Identity",
    "NAMING",
    "Model",
    "Offer",
    "OutboxEntry",
    "PromptTemplate",
    "ReconMark",
    "Request",
    "RequestStep",
    "STATUSES",
    "UsageHour",
    "User",
]
