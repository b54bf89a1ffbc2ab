from datetime import datetime

from pydantic import BaseModel, Field


class ExpiryReport(BaseModel):
    last_run_at: datetime | None = Field(description="When the expiry loop last ran.")
    expired: int = Field(description="Requests expired since recon started.")
