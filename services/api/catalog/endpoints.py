from fastapi import APIRouter

from services.api.auth.dependencies import CurrentUser
from services.api.catalog.schemas import OfferRoute, OfferView, offer_view
from services.api.deps import CatalogDep
from services.api.errors import NotFound

router = APIRouter(tags=["catalog"], route_class=OfferRoute)


@router.get("/svc", response_model=list[OfferView])
async def list_offers(_: CurrentUser, catalog: CatalogDep) -> list[OfferView]:
    """The enabled offers, sorted by service then action, each with the inputs it takes."""
    return [offer_view(offer) for offer in await catalog.list_offers()]


# The path's parameters are named like those of ``POST /svc/{service_name}/{action}``, so that
# both operations share one path in the OpenAPI document. ``GET /svc/request/{request_id}`` is
# registered first and wins for the service named ``request``.
@router.get(
    "/svc/{service_name}/{action}",
    response_model=OfferView,
    responses={404: {"description": "No enabled offer by that name"}},
)
async def get_offer(
    service_name: str, action: str, _: CurrentUser, catalog: CatalogDep
) -> OfferView:
    """One enabled offer; 404 when there is none by that name."""
    offer = await catalog.get(service_name, action)
    if offer is None:
        raise NotFound(f"no enabled offer {service_name}/{action}")
    return offer_view(offer)
