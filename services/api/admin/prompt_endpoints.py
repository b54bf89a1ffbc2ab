"""Administration of the prompt template library. Every route needs the admin role (403).
A body is one ``prompt_templates`` entry of the catalog file: an unsafe template (anything but
plain ``{name}`` fields), an example input that does not render it, text Postgres cannot store
or an oversize field is 422 and writes nothing."""

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response, status

from libs import catalog
from libs.catalog import PromptTemplateSpec
from libs.catalog.prompt_templates import CATEGORY_MAX, NAME_MAX, SLUG
from services.api.admin.dependencies import ADMIN_ONLY, AdminUser
from services.api.admin.schemas import (
    PromptTemplateView,
    RenderBody,
    RenderedView,
    prompt_template_view,
)
from services.api.deps import PoolDep
from services.api.errors import Conflict, InvalidInputs, NotFound

router = APIRouter(prefix="/admin", tags=["admin"], responses=ADMIN_ONLY)

TemplateName = Annotated[str, Path(max_length=NAME_MAX, pattern=SLUG)]
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such prompt template"}}


@router.get("/prompt-templates", response_model=list[PromptTemplateView])
async def list_prompt_templates(
    _: AdminUser,
    pool: PoolDep,
    category: Annotated[str | None, Query(max_length=CATEGORY_MAX, pattern=SLUG)] = None,
    tag: Annotated[str | None, Query(max_length=CATEGORY_MAX, pattern=SLUG)] = None,
    active: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
) -> list[PromptTemplateView]:
    """The prompt templates by name, active or not; ``category``, ``tag`` and ``active`` keep
    those that match."""
    async with pool.acquire() as conn:
        stored = await catalog.list_prompt_templates(
            conn, category=category, tag=tag, active=active, limit=limit, offset=offset
        )
    return [prompt_template_view(s) for s in stored]


@router.get("/prompt-templates/{name}", response_model=PromptTemplateView, responses=NOT_FOUND)
async def get_prompt_template(
    name: TemplateName, _: AdminUser, pool: PoolDep
) -> PromptTemplateView:
    async with pool.acquire() as conn:
        stored = await catalog.get_prompt_template(conn, name)
    if stored is None:
        raise NotFound(f"no prompt template {name}")
    return prompt_template_view(stored)


@router.put(
    "/prompt-templates",
    response_model=PromptTemplateView,
    responses={
        201: {"description": "Created"},
        422: {
            "description": "An unsafe template, an example input that does not render it, "
            "text Postgres cannot store, or a field too long"
        },
    },
)
async def put_prompt_template(
    body: PromptTemplateSpec, _: AdminUser, pool: PoolDep, response: Response
) -> PromptTemplateView:
    """Create (201) or update (200) the template ``body.name``; it keeps its ``usage_count``.
    Writing a template as it is changes nothing (not even ``updated_at``)."""
    async with pool.acquire() as conn, conn.transaction():
        created = await catalog.upsert_prompt_template(conn, body)
        stored = await catalog.get_prompt_template(conn, body.name)
    assert stored is not None  # written in this transaction
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    return prompt_template_view(stored)


@router.post(
    "/prompt-templates/{name}/disable",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=NOT_FOUND,
)
async def disable_prompt_template(name: TemplateName, _: AdminUser, pool: PoolDep) -> None:
    """Disable a template: it is no longer filled (``PUT`` it with ``active: true`` again)."""
    async with pool.acquire() as conn:
        if not await catalog.disable_prompt_template(conn, name):
            raise NotFound(f"no prompt template {name}")


@router.post(
    "/prompt-templates/{name}/render",
    response_model=RenderedView,
    responses={
        **NOT_FOUND,
        409: {"description": "The template is disabled"},
        422: {"description": "Variables missing or unknown (named in `missing`, `unknown`)"},
    },
)
async def render_prompt_template(
    name: TemplateName, body: RenderBody, _: AdminUser, pool: PoolDep
) -> RenderedView:
    """The active template filled with ``body.variables``, which counts one use of it (a
    refused call counts none)."""
    async with pool.acquire() as conn:
        try:
            rendered = await catalog.render_prompt_template(conn, name, body.variables)
        except catalog.PromptTemplateNotFoundError as exc:
            raise NotFound(str(exc)) from None
        except catalog.PromptTemplateInactiveError as exc:
            raise Conflict(str(exc)) from None
        except catalog.VariablesError as exc:
            raise InvalidInputs(str(exc), missing=exc.missing, unknown=exc.unknown) from None
    return RenderedView(name=rendered.name, text=rendered.text, usage_count=rendered.usage_count)
