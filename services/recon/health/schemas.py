from typing import Literal

from pydantic import BaseModel, Field

from services.recon.completion.schemas import CompletionReport
from services.recon.deployments.schemas import ModelHealth
from services.recon.expiry.schemas import ExpiryReport
from services.recon.files.schemas import FilesReport
from services.recon.webhooks.schemas import WebhookFigures


class Probe(BaseModel):
    status: Literal["ok", "error"]
    error: str | None = None


class OutboxBacklog(BaseModel):
    count: int = Field(description="Rows not yet published to Redis.")
    oldest_age_seconds: float | None = Field(
        description="Age of the oldest row by the database clock; null when the outbox is empty."
    )


class UnfinishedRequests(BaseModel):
    count: int = Field(description="Requests not yet succeeded or failed.")
    oldest_age_seconds: float | None


class GroupInfo(BaseModel):
    pending: int = Field(description="Entries delivered to a consumer and not yet acknowledged.")
    consumers: int = Field(description="Consumers known to the group, dead ones included.")
    live_consumers: int = Field(description="Consumers that read in the last 10 seconds.")
    lag: int | None = Field(description="Entries not yet delivered to the group, if known.")


class StreamInfo(BaseModel):
    status: Literal["present", "absent"]
    length: int
    groups: dict[str, GroupInfo]


class IntegrationBudget(BaseModel):
    budget: int = Field(description="Credits the integration may spend per window.")
    spent: int = Field(description="Credits spent in the current window.")
    window_seconds: float
    resets_in_seconds: float = Field(description="Time left in the current window.")


class AlertView(BaseModel):
    key: str
    severity: Literal["critical", "warning"]
    title: str
    detail: str


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    postgres: Probe
    redis: Probe
    outbox: OutboxBacklog | None = None
    requests: UnfinishedRequests | None = None
    streams: dict[str, StreamInfo] | None = None
    budgets: dict[str, IntegrationBudget] | None = Field(
        default=None, description="Credit budgets of the integrations workers share, by name."
    )
    completion: CompletionReport | None = None
    alerts: list[AlertView] = Field(
        default_factory=list, description="Alert rules that this report triggers."
    )
    expiry: ExpiryReport | None = None
    webhooks: WebhookFigures | None = Field(
        default=None,
        description="Webhook deliveries waiting and endpoints disabled; null when they could not "
        "be read, which does not make the report unavailable.",
    )
    files: FilesReport | None = Field(
        default=None,
        description="Blobs and files as of the last collection, and what the collection removed "
        "(figures kept by the collection, so that a health check reads no table).",
    )
    models: dict[str, dict[str, ModelHealth]] | None = Field(
        default=None,
        description="Each enabled model's deployments by model name, then version, as of the "
        "deployments loop's last read (RELAI_RECON_DEPLOYMENTS_INTERVAL_S): in flight, cooling "
        "down, calls, errors and latency of the last 5 minutes, and whether all are down. Null "
        "before the first read or when the last failed, which does not make the report "
        "unavailable.",
    )
