import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from libs.accounts import WEIGHT_MAX
from libs.catalog import PromptTemplateSpec, StoredPromptTemplate
from libs.catalog.numbers import JsonInt
from libs.catalog.prompt_templates import Values
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


class PromptTemplateView(PromptTemplateSpec):
    """A prompt template, as the catalog file holds it, and what the library adds."""

    variables: list[str]
    """The template's variables, in the order they first appear: what filling it takes."""
    usage_count: int
    """How many times it was filled."""
    created_at: datetime
    updated_at: datetime


def prompt_template_view(stored: StoredPromptTemplate) -> PromptTemplateView:
    return PromptTemplateView.model_validate(
        {
            **stored.spec.model_dump(),
            "variables": list(stored.spec.parsed().variables),
            "usage_count": stored.usage_count,
            "created_at": stored.created_at,
            "updated_at": stored.updated_at,
        }
    )


class RenderBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    variables: Values = Field(default_factory=dict)
    """A value for each of the template's variables, and for nothing else."""


class RenderedView(BaseModel):
    name: str
    text: str
    """The template, filled."""
    usage_count: int
    """The template's uses, this one included."""
