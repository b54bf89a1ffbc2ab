"""What a deployment offers, in one answer: its services with their actions, its deals, and the
intents the chat gateway recognises."""

from pydantic import BaseModel, ConfigDict

from services.api.catalog.schemas import OfferView, offer_view
from services.api.catalog.service import Offer
from services.api.deals.schemas import DealView


class ServiceView(BaseModel):
    model_config = ConfigDict(use_attribute_docstrings=True)

    name: str
    actions: list[OfferView]
    """Its enabled offers, by action, as ``GET /svc/{service}/{action}`` shows each."""


class IntentView(BaseModel):
    """An intent the chat gateway recognises in a message."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    name: str
    description: str


class Capabilities(BaseModel):
    model_config = ConfigDict(use_attribute_docstrings=True)

    services: list[ServiceView]
    """The enabled offers grouped by service, by name."""
    deals: list[DealView]
    """The enabled deals (those whose offers are all enabled), by slug."""
    intents: list[IntentView]
    """The intents the chat gateway recognises: none yet (the catalog will declare them)."""


def services_of(offers: tuple[Offer, ...]) -> list[ServiceView]:
    """``offers`` (sorted by service, then action) grouped by service."""
    services: dict[str, list[OfferView]] = {}
    for offer in offers:
        services.setdefault(offer.service, []).append(offer_view(offer))
    return [ServiceView(name=name, actions=actions) for name, actions in services.items()]
