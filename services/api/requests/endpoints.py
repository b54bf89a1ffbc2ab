import uuid
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request, status

from libs.contracts import RequestStatus
from services.api import submission
from services.api.auth.dependencies import CurrentUser
from services.api.auth.service import Principal
from services.api.catalog.schemas import OfferRoute
from services.api.catalog.service import Offer
from services.api.deps import CatalogDep, PoolDep, RedisDep, SettingsDep
from services.api.errors import NotFound
from services.api.files.links import linked_inputs, linked_results
from services.api.requests import service
from services.api.requests.inputs import offer_inputs
from services.api.requests.schemas import AskBody, Cancelled, RequestPage, RequestView
from services.api.state import app_state
from services.api.submission import (
    OFFER_SUBMIT_HEADERS,
    SUBMIT_ERRORS,
    StepView,
    Submitted,
    links_for,
)
from services.api.submission import reads as repository
from services.api.submission.cancel import cancel
from services.api.text import STORABLE_PATTERN

router = APIRouter(tags=["requests"], route_class=OfferRoute)
submit_router = APIRouter(tags=["requests"], route_class=OfferRoute)
"""``POST /svc/{service}/{action}``, which takes files: included with the larger body limit."""
NO_SUCH_REQUEST: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such request, or another user's"}
}


async def _submit(
    request: Request,
    offer: Offer,
    user: Principal,
    inputs: dict[str, str],
    files: tuple[submission.SubmittedFile, ...] = (),
) -> Submitted:
    """The submit path, shared by every submit route. It reads the state and headers itself
    rather than through one dependency each: on the hottest route, resolving dependencies cost
    a fifth of the API's CPU."""
    idempotency_key = submission.idempotency_key(request.headers.get("idempotency-key"))
    order = submission.offer_order(
        offer, inputs, files, tier=request.headers.get(submission.TIER_HEADER)
    )
    done = await app_state(request).submitter.submit(
        user=user,
        order=order,
        idempotency_key=idempotency_key,
        traceparent=request.headers.get("traceparent"),
        webhook_url=request.headers.get(submission.WEBHOOK_URL_HEADER),
    )
    return Submitted(
        id=done.id,
        status=done.status,
        price=done.price,
        duplicate=done.duplicate,
        links=links_for(done.id),
    )


def _view(row: Any) -> RequestView:
    """A request as its owner sees it: each file of its inputs and results with its ``url``."""
    fields = dict(row)
    fields["inputs"] = linked_inputs(fields["inputs"], fields.pop("input_files", None))
    fields["results"] = linked_results(fields["results"])
    return RequestView.model_validate({**fields, "links": links_for(row["id"])})


@submit_router.post(
    "/svc/{service_name}/{action}",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Submitted,
    responses=SUBMIT_ERRORS,
    openapi_extra={
        "parameters": OFFER_SUBMIT_HEADERS,
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "additionalProperties": {"type": "string", "pattern": STORABLE_PATTERN},
                        "description": "The offer's template variables, each a string, and "
                        "its file inputs, each the id of one of your files.",
                    }
                },
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "additionalProperties": {"type": "string", "format": "binary"},
                        "description": "The offer's template variables as text fields, and "
                        "its file inputs as file parts (or text fields holding file ids).",
                    }
                },
            },
        },
    },
)
async def submit(service_name: str, action: str, request: Request, user: CurrentUser) -> Submitted:
    """Submit a request to the offer ``service_name/action``: 202 with its id and links."""
    offer = await app_state(request).catalog.get(service_name, action)
    if offer is None:
        raise NotFound(f"no enabled offer {service_name}/{action}")
    inputs, files = await offer_inputs(request, offer, user)
    return await _submit(request, offer, user, inputs, files)


@router.post(
    "/ask",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Submitted,
    responses=SUBMIT_ERRORS,
    openapi_extra={"parameters": OFFER_SUBMIT_HEADERS},
)
async def ask(
    body: AskBody, request: Request, user: CurrentUser, catalog: CatalogDep, settings: SettingsDep
) -> Submitted:
    """Submit a prompt to the default offer (config ``api``, else ``RELAI_ASK_OFFER``)."""
    default_offer = service.ask_offer(app_state(request).config, settings.ask_offer)
    service_name, _, action = default_offer.partition("/")
    offer = await catalog.get(service_name, action)
    if offer is None:
        raise NotFound(f"the default offer {default_offer} is not enabled")
    variable = offer.template.variables[0] if offer.template.variables else "prompt"
    inputs = service.parse_inputs(orjson.dumps({variable: body.prompt}), offer)
    return await _submit(request, offer, user, inputs)


@router.get("/svc/request/{request_id}", response_model=RequestView, responses=NO_SUCH_REQUEST)
async def get_request(request_id: str, user: CurrentUser, pool: PoolDep) -> RequestView:
    """A request's status and results. Unknown ids and other users' ids are both 404."""
    try:
        parsed = uuid.UUID(request_id)
    except ValueError:
        raise NotFound("no such request") from None
    row = await repository.get_view(pool, parsed, user.id)
    if row is None:
        raise NotFound("no such request")
    view = _view(row)
    if row["deal_id"] is not None:
        steps = await submission.steps_of(pool, parsed)
        view.steps = [
            StepView.model_validate({**dict(s), "results": linked_results(s["results"])})
            for s in steps
        ]
    if view.status is RequestStatus.PENDING:
        place = repository.place_of(*await repository.queue_place(pool, parsed))
        view.queue_position, view.queue_eta_s = place
    return view


@router.post(
    "/svc/request/{request_id}/cancel",
    response_model=Cancelled,
    responses={
        **NO_SUCH_REQUEST,
        409: {"description": "The request has already ended, or changed meanwhile: retry"},
    },
)
async def cancel_request(
    request_id: str, user: CurrentUser, pool: PoolDep, redis: RedisDep
) -> Cancelled:
    """Cancel a pending or running request and refund it; idempotent. 409 once it has ended
    otherwise; unknown ids and other users' ids are both 404."""
    try:
        parsed = uuid.UUID(request_id)
    except ValueError:
        raise NotFound("no such request") from None
    done = await cancel(pool, redis, user=user, request_id=parsed)
    return Cancelled(id=done.id, status=RequestStatus.CANCELLED, refunded=done.refunded)


@router.get(
    "/svc/requests",
    response_model=RequestPage,
    responses={400: {"description": "A cursor this API did not return"}},
)
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
