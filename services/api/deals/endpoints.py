import uuid

from fastapi import APIRouter, Request, status

from libs.contracts import TASKS_STREAM
from services.api.auth.dependencies import CurrentUser
from services.api.deals import repository, service
from services.api.deals.dependencies import DealsDep
from services.api.deals.schemas import DealBody, DealSubmitted, DealView, deal_view
from services.api.deps import PoolDep
from services.api.errors import BadRequest, NotFound
from services.api.requests.endpoints import SUBMIT_HEADERS
from services.api.requests.schemas import StepView, links_for

router = APIRouter(tags=["deals"])


@router.get("/deals", response_model=list[DealView])
async def list_deals(_: CurrentUser, deals: DealsDep) -> list[DealView]:
    """The enabled deals, by slug, each with its price and the inputs it takes."""
    return [deal_view(deal) for deal in await deals.list_deals()]


@router.get("/deals/{slug}", response_model=DealView)
async def get_deal(slug: str, _: CurrentUser, deals: DealsDep) -> DealView:
    deal = await deals.get(slug)
    if deal is None:
        raise NotFound(f"no enabled deal {slug}")
    return deal_view(deal)


async def steps_view(pool: PoolDep, request_id: uuid.UUID) -> list[StepView]:
    rows = await repository.steps_of(pool, request_id)
    return [StepView.model_validate(dict(r)) for r in rows]


@router.post(
    "/deal/{slug}",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=DealSubmitted,
    openapi_extra={"parameters": SUBMIT_HEADERS},
)
async def submit_deal(
    slug: str, body: DealBody, request: Request, user: CurrentUser, deals: DealsDep, pool: PoolDep
) -> DealSubmitted:
    """Submit a deal: one request with a step per offer; 202 with its id, price and steps."""
    deal = await deals.get(slug)
    if deal is None:
        raise NotFound(f"no enabled deal {slug}")
    idempotency_key = request.headers.get("idempotency-key")
    if idempotency_key is not None and len(idempotency_key) > 200:
        raise BadRequest("Idempotency-Key is longer than 200 characters")
    submission = await service.submit_deal(
        pool,
        user=user,
        deal=deal,
        inputs=body.inputs,
        addon_names=body.addons,
        idempotency_key=idempotency_key,
        traceparent=request.headers.get("traceparent"),
        max_prompt_chars=request.state.settings.max_prompt_chars,
        max_unfinished=request.state.limits.current().max_unfinished_per_user,
        stream=TASKS_STREAM,
    )
    return DealSubmitted(
        id=submission.id,
        status=submission.status,
        price=submission.price,
        duplicate=submission.duplicate,
        steps=await steps_view(pool, submission.id),
        links=links_for(submission.id),
    )
