from pydantic import BaseModel, Field


class WebhookFigures(BaseModel):
    pending: int = Field(description="Deliveries not yet delivered nor given up.")
    due: int = Field(
        description="Pending deliveries whose next try is due and that no dispatcher holds: "
        "they wait for a dispatcher, the others for their retry time."
    )
    destinations: int = Field(
        description="Endpoints and one-off URLs the pending deliveries go to (how many, not which)."
    )
    oldest_pending_age_seconds: float | None = Field(
        description="How long the oldest pending delivery has waited since it was queued or sent "
        "again (database clock); null when none is pending."
    )
    endpoints_disabled: int = Field(
        description="Endpoints disabled after sustained failure (or 410 Gone) and not re-enabled."
    )
    failed_last_hour: int = Field(
        description="Deliveries given up (failed) whose last attempt was within the last hour."
    )
