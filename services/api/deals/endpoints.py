from fastapi import APIRouter, Request, status

from services.api import submission
from services.api.auth.dependencies import CurrentUser
from services.api.deals import service
from services.api.deals.dependencies import DealsDep
from services.api.deals.schemas import DealBody, DealSubmitted, DealView, deal_view
from services.api.deps import PoolDep
from services.api.errors import InvalidInputs, NotFound
from services.api.state import app_state
from services.api.submission import SUBMIT_ERRORS, SUBMIT_HEADERS, StepView, links_for

router = APIRouter(tags=["deals"])


@router.get("/deals", response_model=list[DealView])
async def list_deals(_: CurrentUser, deals: DealsDep) -> list[DealView]:
    """The enabled deals, by slug, each with its price and the inputs it takes."""
    return [deal_view(deal) for deal in await deals.list_deals()]


@router.get(
    "/deals/{slug}",
    response_model=DealView,
    responses={404: {"description": "No enabled deal by that name"}},
)
async def get_deal(slug: str, _: CurrentUser, deals: DealsDep) -> DealView:
    deal = await deals.get(slug)
    if deal is None:
        raise NotFound(f"no enabled deal {slug}")
    return deal_view(deal)


@router.post(
    "/deal/{slug}",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=DealSubmitted,
    responses=SUBMIT_ERRORS,
    openapi_extra={"parameters": SUBMIT_HEADERS},
)
async def submit_deal(
    slug: str, body: DealBody, request: Request, user: CurrentUser, deals: DealsDep, pool: PoolDep
) -> DealSubmitted:
    """Submit a deal: one request with a step per offer; 202 with its id, price and steps."""
    deal = await deals.get(slug)
    if deal is None:
        raise NotFound(f"no enabled deal {slug}")
    if request.headers.get(submission.TIER_HEADER) not in (None, "auto", "default"):
        raise InvalidInputs(
            f"a deal is served at the default tier: {submission.TIER_HEADER} names the tier of "
            "a single offer's request"
        )
    idempotency_key = submission.idempotency_key(request.headers.get("idempotency-key"))
    order = service.order_for(deal, body.inputs, body.addons)
    done = await app_state(request).submitter.submit(
        user=user,
        order=order,
        idempotency_key=idempotency_key,
        traceparent=request.headers.get("traceparent"),
        webhook_url=request.headers.get(submission.WEBHOOK_URL_HEADER),
    )
    steps = await submission.steps_of(pool, done.id)
    return DealSubmitted(
        id=done.id,
        status=done.status,
        price=done.price,
        duplicate=done.duplicate,
        steps=[StepView.model_validate(dict(r)) for r in steps],
        links=links_for(done.id),
    )
