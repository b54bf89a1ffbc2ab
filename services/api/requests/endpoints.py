import uuid
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Header, Query, Request, status

from libs.contracts import RequestStatus
from libs.db import PgPool
from services.api.auth.dependencies import CurrentUser
from services.api.auth.service import Principal
from services.api.catalog.service import Offer
from services.api.deps import BatcherDep, CatalogDep, PoolDep, SettingsDep
from services.api.errors import NotFound
from services.api.requests import repository, service
from services.api.requests.batcher import SubmitBatcher
from services.api.requests.schemas import (
    AskBody,
    RequestPage,
    RequestView,
    Submitted,
    links_for,
)

router = APIRouter(tags=["requests"])

IdempotencyKey = Annotated[str | None, Header(max_length=200)]
TraceParent = Annotated[str | None, Header()]


async def _submit(
    offer: Offer,
    body: bytes,
    user: Principal,
    pool: PgPool,
    batcher: SubmitBatcher,
    idempotency_key: str | None,
    traceparent: str | None,
) -> Submitted:
    inputs = service.parse_inputs(body, offer)
    submission = await service.submit(
        pool,
        batcher,
        user=user,
        offer=offer,
        inputs=inputs,
        idempotency_key=idempotency_key,
        traceparent=traceparent,
    )
    return Submitted(
        id=submission.id,
        status=submission.status,
        price=submission.price,
        duplicate=submission.duplicate,
        links=links_for(submission.id),
    )


def _view(row: Any) -> RequestView:
    return RequestView.model_validate({**dict(row), "links": links_for(row["id"])})


@router.post(
    "/svc/{service_name}/{action}",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Submitted,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "additionalProperties": {"type": "string"},
                        "description": "The offer's template variables, each a string.",
                    }
                }
            },
        }
    },
)
async def submit(
    service_name: str,
    action: str,
    request: Request,
    user: CurrentUser,
    pool: PoolDep,
    catalog: CatalogDep,
    batcher: BatcherDep,
    idempotency_key: IdempotencyKey = None,
    traceparent: TraceParent = None,
) -> Submitted:
    """Submit a request to the offer ``service_name/action``: 202 with its id and links."""
    offer = await catalog.get(service_name, action)
    if offer is None:
        raise NotFound(f"no enabled offer {service_name}/{action}")
    return await _submit(
        offer, await request.body(), user, pool, batcher, idempotency_key, traceparent
    )


@router.post("/ask", status_code=status.HTTP_202_ACCEPTED, response_model=Submitted)
async def ask(
    body: AskBody,
    user: CurrentUser,
    pool: PoolDep,
    catalog: CatalogDep,
    batcher: BatcherDep,
    settings: SettingsDep,
    idempotency_key: IdempotencyKey = None,
    traceparent: TraceParent = None,
) -> Submitted:
    """Submit a prompt to the default offer (``RELAI_ASK_OFFER``)."""
    service_name, _, action = settings.ask_offer.partition("/")
    offer = await catalog.get(service_name, action)
    if offer is None:
        raise NotFound(f"the default offer {settings.ask_offer} is not enabled")
    variable = offer.template.variables[0] if offer.template.variables else "prompt"
    return await _submit(
        offer,
        orjson.dumps({variable: body.prompt}),
        user,
        pool,
        batcher,
        idempotency_key,
        traceparent,
    )


@router.get("/svc/request/{request_id}", response_model=RequestView)
async def get_request(request_id: str, user: CurrentUser, pool: PoolDep) -> RequestView:
    """A request's status and results. Unknown ids and other users' ids are both 404."""
    try:
        parsed = uuid.UUID(request_id)
    except ValueError:
        raise NotFound("no such request") from None
    row = await repository.get_view(pool, parsed, user.id)
    if row is None:
        raise NotFound("no such request")
    return _view(row)


@router.get("/svc/requests", response_model=RequestPage)
async def list_requests(
    user: CurrentUser,
    pool: PoolDep,
    settings: SettingsDep,
    limit: Annotated[int, Query(ge=1)] = 50,
    cursor: str | None = None,
    status_filter: Annotated[RequestStatus | None, Query(alias="status")] = None,
) -> RequestPage:
    """The caller's requests, newest first."""
    limit = min(limit, settings.page_size_max)
    before = service.decode_cursor(cursor) if cursor else None
    rows = await repository.list_views(
        pool,
        user.id,
        before=before,
        status=status_filter.value if status_filter else None,
        limit=limit + 1,
    )
    items = [_view(r) for r in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        next_cursor = service.encode_cursor(last["created_at"], last["id"])
    return RequestPage(items=items, next_cursor=next_cursor)
