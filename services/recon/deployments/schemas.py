from pydantic import BaseModel, Field


class DeploymentHealth(BaseModel):
    """One deployment of a model version, by its integration's name: never its base URL or key."""

    integration: str
    weight: int
    in_flight: int = Field(description="Calls running on it now (leases not expired).")
    cooling: bool = Field(description="Whether it is cooling down: nothing new is sent to it.")
    cooling_s: float | None = Field(description="Seconds of cooldown left; null when not cooling.")
    calls_5m: int = Field(
        description="Calls that ended on it in the current minute and the four before."
    )
    errors_5m: int = Field(description="Of those, the ones that failed.")
    error_rate_5m: float | None = Field(description="errors_5m / calls_5m; null with no call.")
    latency_ms_5m: float | None = Field(description="Their mean latency; null with no call.")


class ModelHealth(BaseModel):
    all_down: bool = Field(
        description="Every deployment of this model version is cooling down (and it has one): "
        "its jobs cannot run until one comes back."
    )
    deployments: list[DeploymentHealth]


ModelsReport = dict[str, dict[str, ModelHealth]]
"""By model name, then version."""
