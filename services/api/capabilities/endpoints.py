from fastapi import APIRouter

from services.api.auth.dependencies import CurrentUser
from services.api.capabilities.schemas import Capabilities, services_of
from services.api.deals.dependencies import DealsDep
from services.api.deals.schemas import deal_view
from services.api.deps import CatalogDep

router = APIRouter(tags=["catalog"])


@router.get("/capabilities", response_model=Capabilities)
async def capabilities(_: CurrentUser, catalog: CatalogDep, deals: DealsDep) -> Capabilities:
    """What this deployment offers: its enabled services with their actions (prices, tiers,
    inputs, file inputs, model), its enabled deals, and the intents the chat gateway
    recognises. ``intents`` is empty for now: the chat gateway will declare its intents in the
    catalog, and they will be listed here."""
    offers = await catalog.list_offers()
    listed = sorted(await deals.list_deals(), key=lambda d: d.slug)
    return Capabilities(
        services=services_of(offers), deals=[deal_view(d) for d in listed], intents=[]
    )
