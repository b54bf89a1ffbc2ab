import uuid
from datetime import datetime

from pydantic import BaseModel


class Me(BaseModel):
    id: uuid.UUID
    name: str
    role: str
    balance: int
    """Credits available to spend."""
    reserved: int
    """Credits held by requests that have not ended."""
    created_at: datetime
