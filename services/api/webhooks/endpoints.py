"""``/webhooks``: the caller's endpoints, their secrets, the one-off URL's secret, and the
deliveries, to read, ping and redeliver. Another user's endpoint or delivery is a 404, as a
missing one is. (The static paths come before ``/webhooks/{endpoint_id}``.)"""

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Response, status

from libs.security.ssrf import UrlPolicy
from services.api.auth.dependencies import CurrentUser
from services.api.deps import PoolDep, SettingsDep
from services.api.errors import NotFound
from services.api.webhooks import repository, service
from services.api.webhooks.schemas import (
    DeliveryPage,
    DeliveryView,
    EndpointBody,
    EndpointPatch,
    EndpointView,
    EndpointWithSecret,
    Queued,
    RotateBody,
    SecretView,
    SecretWithValue,
)

router = APIRouter(prefix="/webhooks", tags=["webhooks"])

Responses = dict[int | str, dict[str, Any]]
NO_ENDPOINT: Responses = {404: {"description": "No such endpoint, or another user's"}}
NO_DELIVERY: Responses = {404: {"description": "No such endpoint or delivery, or another user's"}}
BAD_URL: Responses = {
    422: {"description": "A body that does not fit, or a URL the SSRF guard refuses"}
}
PENDING: Responses = {409: {"description": "The delivery is still pending"}}
BAD_CURSOR: Responses = {400: {"description": "A cursor this API did not return"}}
DeliveryId = Annotated[
    str,
    Path(
        description="The delivery's id, or its webhook-id (msg_ and the id in hex)",
        pattern="^(msg_[0-9a-f]{32}|[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?"
        "[0-9a-fA-F]{4}-?[0-9a-fA-F]{12})$",
    ),
]
Status = Annotated[Literal["pending", "delivered", "failed"] | None, Query(alias="status")]
Limit = Annotated[int, Query(ge=1)]


def _policy(settings: SettingsDep) -> UrlPolicy:
    return UrlPolicy.from_allow(settings.ssrf_allow)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=EndpointWithSecret,
    responses={
        **BAD_URL,
        409: {"description": "The caller has as many endpoints as allowed (20)"},
    },
)
async def create_endpoint(
    body: EndpointBody, user: CurrentUser, pool: PoolDep, settings: SettingsDep
) -> EndpointWithSecret:
    """Register an endpoint: 201 with its signing secret, shown this once (and at rotation)."""
    return await service.create_endpoint(pool, _policy(settings), user_id=user.id, body=body)


@router.get("", response_model=list[EndpointView])
async def list_endpoints(user: CurrentUser, pool: PoolDep) -> list[EndpointView]:
    """The caller's endpoints, oldest first (never their secrets)."""
    return [service.endpoint_view(r) for r in await repository.list_endpoints(pool, user.id)]


@router.get("/secret", response_model=SecretView, responses={404: {"description": "None yet"}})
async def get_secret(user: CurrentUser, pool: PoolDep) -> SecretView:
    """What there is to know of the caller's one-off secret, but the secret itself."""
    row = await repository.get_secret(pool, user.id)
    if row is None:
        raise NotFound("no one-off secret yet; POST /webhooks/secret creates it")
    return SecretView.model_validate(dict(row))


@router.post(
    "/secret",
    response_model=SecretWithValue,
    responses={201: {"description": "Created", "model": SecretWithValue}},
)
async def put_secret(
    user: CurrentUser, pool: PoolDep, response: Response, body: RotateBody | None = None
) -> SecretWithValue:
    """Create (201) or rotate (200) the secret that signs the caller's one-off URLs, shown this
    once; after a rotation the old one keeps signing beside it for ``overlap_s``."""
    secret, created = await service.put_secret(pool, user_id=user.id, body=body)
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    return secret


@router.get("/deliveries", response_model=DeliveryPage, responses=BAD_CURSOR)
async def list_all_deliveries(
    user: CurrentUser,
    pool: PoolDep,
    settings: SettingsDep,
    limit: Limit = 50,
    cursor: str | None = None,
    status_filter: Status = None,
    request_id: uuid.UUID | None = None,
    endpoint_id: uuid.UUID | None = None,
) -> DeliveryPage:
    """Every delivery of the caller's (endpoints' and one-off URLs'), newest first."""
    return await service.deliveries_page(
        pool,
        user_id=user.id,
        limit=min(limit, settings.page_size_max),
        cursor=cursor,
        endpoint_id=endpoint_id,
        request_id=request_id,
        status=status_filter,
    )


@router.get("/deliveries/{delivery_id}", response_model=DeliveryView, responses=NO_DELIVERY)
async def get_any_delivery(
    delivery_id: DeliveryId, user: CurrentUser, pool: PoolDep
) -> DeliveryView:
    """One delivery of the caller's (an endpoint's or a one-off URL's), with its attempts."""
    return await service.delivery(pool, user_id=user.id, delivery_id=delivery_id)


@router.post(
    "/deliveries/{delivery_id}/redeliver",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Queued,
    responses={**NO_DELIVERY, **PENDING},
)
async def redeliver_any(delivery_id: DeliveryId, user: CurrentUser, pool: PoolDep) -> Queued:
    """Send a delivered or given-up delivery again (one-off URLs' too), same id and body."""
    parsed = service.parse_delivery_id(delivery_id)
    async with pool.acquire() as conn, conn.transaction():
        return await service.redeliver(conn, user_id=user.id, delivery_id=parsed)


@router.get("/{endpoint_id:uuid}", response_model=EndpointView, responses=NO_ENDPOINT)
async def get_endpoint(endpoint_id: uuid.UUID, user: CurrentUser, pool: PoolDep) -> EndpointView:
    row = await repository.get_endpoint(pool, user.id, endpoint_id)
    if row is None:
        raise NotFound(service.NO_ENDPOINT)
    return service.endpoint_view(row)


@router.patch(
    "/{endpoint_id:uuid}", response_model=EndpointView, responses={**NO_ENDPOINT, **BAD_URL}
)
async def update_endpoint(
    endpoint_id: uuid.UUID,
    body: EndpointPatch,
    user: CurrentUser,
    pool: PoolDep,
    settings: SettingsDep,
) -> EndpointView:
    """Change the URL, events, description, or ``enabled`` (re-enabling clears the failures the
    dispatcher recorded)."""
    return await service.update_endpoint(
        pool, _policy(settings), user_id=user.id, endpoint_id=endpoint_id, body=body
    )


@router.delete("/{endpoint_id:uuid}", status_code=status.HTTP_204_NO_CONTENT, responses=NO_ENDPOINT)
async def delete_endpoint(endpoint_id: uuid.UUID, user: CurrentUser, pool: PoolDep) -> Response:
    """Delete the endpoint, and its deliveries with it."""
    if not await repository.delete_endpoint(pool, user.id, endpoint_id):
        raise NotFound(service.NO_ENDPOINT)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{endpoint_id:uuid}/rotate", response_model=EndpointWithSecret, responses=NO_ENDPOINT)
async def rotate_secret(
    endpoint_id: uuid.UUID, user: CurrentUser, pool: PoolDep, body: RotateBody | None = None
) -> EndpointWithSecret:
    """A new signing secret, shown this once; the old one keeps signing beside it for
    ``overlap_s`` seconds (both signatures on every delivery), then stops."""
    return await service.rotate_endpoint(pool, user_id=user.id, endpoint_id=endpoint_id, body=body)


@router.post(
    "/{endpoint_id:uuid}/ping",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Queued,
    responses=NO_ENDPOINT,
)
async def ping(endpoint_id: uuid.UUID, user: CurrentUser, pool: PoolDep) -> Queued:
    """Send a test event (``webhook.ping``) to the endpoint, even a disabled one."""
    async with pool.acquire() as conn, conn.transaction():
        return await service.ping(conn, user_id=user.id, endpoint_id=endpoint_id)


@router.get(
    "/{endpoint_id:uuid}/deliveries",
    response_model=DeliveryPage,
    responses={**NO_ENDPOINT, **BAD_CURSOR},
)
async def list_deliveries(
    endpoint_id: uuid.UUID,
    user: CurrentUser,
    pool: PoolDep,
    settings: SettingsDep,
    limit: Limit = 50,
    cursor: str | None = None,
    status_filter: Status = None,
) -> DeliveryPage:
    """The endpoint's deliveries, newest first, each with its attempts."""
    if await repository.get_endpoint(pool, user.id, endpoint_id) is None:
        raise NotFound(service.NO_ENDPOINT)
    return await service.deliveries_page(
        pool,
        user_id=user.id,
        limit=min(limit, settings.page_size_max),
        cursor=cursor,
        endpoint_id=endpoint_id,
        status=status_filter,
    )


@router.get(
    "/{endpoint_id:uuid}/deliveries/{delivery_id}",
    response_model=DeliveryView,
    responses=NO_DELIVERY,
)
async def get_delivery(
    endpoint_id: uuid.UUID, delivery_id: DeliveryId, user: CurrentUser, pool: PoolDep
) -> DeliveryView:
    return await service.delivery(
        pool, user_id=user.id, delivery_id=delivery_id, endpoint_id=endpoint_id
    )


@router.post(
    "/{endpoint_id:uuid}/deliveries/{delivery_id}/redeliver",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Queued,
    responses={**NO_DELIVERY, **PENDING},
)
async def redeliver(
    endpoint_id: uuid.UUID, delivery_id: DeliveryId, user: CurrentUser, pool: PoolDep
) -> Queued:
    """Send a delivered or given-up delivery again, with the same id and body: it is pending
    again, retried as a new event would be."""
    parsed = service.parse_delivery_id(delivery_id)
    async with pool.acquire() as conn, conn.transaction():
        return await service.redeliver(
            conn, user_id=user.id, delivery_id=parsed, endpoint_id=endpoint_id
        )
