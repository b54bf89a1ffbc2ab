import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from libs.accounts import WEIGHT_MAX
from libs.catalog.numbers import JsonInt
from services.api.auth.schemas import Me
from services.api.text import StorableText, UserName

NAME_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]+$"
"""A user name in a path: any text without control characters (a body's is a ``UserName``)."""

MAX_CREDITS = 10**15
"""Most credits one grant (or opening balance) may add."""


class UserView(Me):
    """An account as its owner sees it at ``GET /me``, and its scheduling weight."""

    weight: int = 1
    """Under fair scheduling, how many of the user's jobs are taken per turn where a user of
    weight 1 gets one (``PUT /admin/users/{name}/weight``)."""


class WeightBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    weight: JsonInt = Field(ge=1, le=WEIGHT_MAX)


class Weight(BaseModel):
    name: str
    weight: int


class NewUserBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: UserName
    credits: JsonInt = Field(ge=0, le=MAX_CREDITS)
    role: Literal["user", "admin"] = "user"


class CreatedUser(UserView):
    api_key: str
    """Shown once; only its hash is stored."""


class GrantBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    credits: JsonInt = Field(gt=0, le=MAX_CREDITS)


class Balance(BaseModel):
    balance: int


class KeyView(BaseModel):
    id: uuid.UUID
    prefix: str
    created_at: datetime
    revoked_at: datetime | None


class NewKey(BaseModel):
    api_key: str
    """Shown once; only its hash is stored."""


class IdentityBody(BaseModel):
    """An OIDC subject that may sign in as the user."""

    model_config = ConfigDict(extra="forbid")

    issuer: StorableText = Field(min_length=1, max_length=2000)
    subject: StorableText = Field(min_length=1, max_length=2000)


class IdentityView(IdentityBody):
    user_id: uuid.UUID


class HandlerView(BaseModel):
    id: str
    credits: int
    params: dict[str, Any]
    """Secret-looking values (keys, tokens, passwords) are masked."""
    max_concurrency: int | None
    enabled: bool
