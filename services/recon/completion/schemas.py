from datetime import datetime

from pydantic import BaseModel, Field


class CompletionReport(BaseModel):
    last_run_at: datetime | None = Field(
        description="When the completion loop last looked at the streams and the database."
    )
    redriven: int = Field(description="Stuck requests sent again since recon started.")
    failed: int = Field(description="Stuck requests failed and refunded since recon started.")
    skipped_runs: int = Field(description="Runs skipped because Redis or Postgres was unreachable.")
    redis_recoveries: int = Field(
        description="Times Redis was found to have lost its data and every unfinished request "
        "absent from the streams was re-driven."
    )
