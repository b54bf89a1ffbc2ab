from typing import Literal

from pydantic import BaseModel, Field


class Probe(BaseModel):
    status: Literal["ok", "error"]
    error: str | None = None


class Backlog(BaseModel):
    pending: int = Field(description="Deliveries not yet delivered nor given up.")
    due: int = Field(description="Pending deliveries whose next attempt is due now.")
    oldest_pending_age_seconds: float | None = Field(
        description="Age of the oldest pending delivery (database clock); null when none."
    )


class Dispatching(BaseModel):
    """What this process has done since it started."""

    listening: bool = Field(description="Whether it holds its LISTEN connection.")
    in_flight: int
    concurrency: int
    delivered: int
    retried: int
    failed: int
    endpoints_disabled: int
    stale: int = Field(description="Attempts that outlived their lease (recorded, no effect).")
    last_error: str | None = Field(description="The kind of the last database error, if any.")


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    postgres: Probe
    backlog: Backlog | None
    dispatch: Dispatching
