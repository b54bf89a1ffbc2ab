"""The declarative catalog file: handlers, models, offers, deals and prompt templates, validated
before anything is written."""

from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal, Self

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    field_serializer,
    field_validator,
    model_validator,
)

from libs.catalog.file_inputs import FILE_INPUT_NAME, FILE_INPUTS_MAX, FileInputSpec
from libs.catalog.models import (
    FallbackSpec,
    ModelRef,
    ModelSpec,
    check_models,
    check_offer_models,
)
from libs.catalog.numbers import CREDITS_MAX, INT32_MAX, JSON_INTEGER, JsonInt
from libs.catalog.prompt_templates import PromptTemplateSpec, check_names
from libs.catalog.template import PromptTemplate
from libs.catalog.values import Params, TokenPrice, json_number, storable
from libs.contracts import HandlerId
from libs.contracts.tiers import DEFAULT_TIER, Tier

_SLUG = r"^[a-z0-9][a-z0-9_-]*$"
RESERVED_SERVICES = frozenset({"request", "requests"})
"""``/svc/request/{id}`` and ``/svc/requests`` belong to the requests API."""
Alias = Annotated[
    str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")
]
"""Another name of an offer (``gpt-4o-mini``): never a ``/``, so never a ``service/action``."""


TIER_PERCENT_MAX = 1000
"""The dearest a tier may be: ten times the offer's prices."""
TierPercent = Annotated[int, Field(ge=1, le=TIER_PERCENT_MAX), JSON_INTEGER]
"""What a tier costs, as a percentage of the offer's prices (``default`` is 100)."""


class _Entry(BaseModel):
    """Integers and booleans are strict: ``false`` is no count of credits, ``0`` no ``enabled``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="after")
    def _postgres_can_store_it(self) -> Self:
        for name in type(self).model_fields:
            storable(getattr(self, name), name)
        return self


class HandlerSpec(_Entry):
    id: HandlerId
    credits: JsonInt = Field(default=0, ge=0, le=CREDITS_MAX)
    params: Params = Field(default_factory=dict)
    max_concurrency: Annotated[int, Field(ge=1, le=INT32_MAX), JSON_INTEGER] | None = None
    enabled: StrictBool = True


class OfferSpec(_Entry):
    service: str = Field(pattern=_SLUG)
    action: str = Field(pattern=_SLUG)
    price: JsonInt = Field(ge=0, le=CREDITS_MAX)
    """Credits per request; with token prices, the base each request pays beside its tokens."""
    prompt_template: str
    handler: str
    create_qty: JsonInt = Field(default=1, ge=1, le=1000)
    expiration: Annotated[int, Field(ge=1, le=INT32_MAX), JSON_INTEGER] | None = None
    params: Params = Field(default_factory=dict)
    enabled: StrictBool = True
    input_price: TokenPrice | None = None
    """Credits per 1,000 input tokens (``libs.catalog.pricing``)."""
    output_price: TokenPrice | None = None
    """Credits per 1,000 output tokens; needs ``max_output_tokens``."""
    max_output_tokens: Annotated[int, Field(ge=1, le=INT32_MAX), JSON_INTEGER] | None = None
    """The most output tokens a request may ask for, and what is reserved when it names none."""
    aliases: list[Alias] = Field(default_factory=list)
    """Other names the OpenAI-compatible door knows the offer by; each names one enabled
    offer."""
    files: Annotated[
        dict[Annotated[str, Field(pattern=FILE_INPUT_NAME)], FileInputSpec],
        Field(max_length=FILE_INPUTS_MAX),
    ] = Field(default_factory=dict)
    """The offer's file inputs by name (an identifier, not one of the template's variables)."""
    tiers: dict[Literal["flex", "priority"], TierPercent] = Field(default_factory=dict)
    """The priority tiers it sells beside ``default``, each at a percentage of its prices
    (``{"flex": 50, "priority": 200}``): a request at a tier reserves and pays that much of what
    it would at ``default``, rounded up to whole credits."""
    default_tier: Tier = DEFAULT_TIER
    """The tier of a request that names none: ``default`` or one of ``tiers``."""
    model: ModelRef | None = None
    """The model it runs, ``name`` (its default version when submitted) or ``name@version``:
    its requests must fit that version's context window and are routed to its deployments."""
    fallbacks: Annotated[list[FallbackSpec], Field(max_length=3)] = Field(default_factory=list)
    """Models that serve its requests, in order, when every deployment of ``model`` failed
    without an answer; each priced at its ``percent`` of the request's price."""

    @property
    def token_priced(self) -> bool:
        return self.input_price is not None or self.output_price is not None

    @model_validator(mode="after")
    def _file_names_are_not_variables(self) -> Self:
        clash = sorted(set(self.files) & set(PromptTemplate.parse(self.prompt_template).variables))
        if clash:
            raise ValueError(
                "file inputs and template variables share names: "
                + ", ".join(clash)
                + " (a submission's field is one or the other)"
            )
        return self

    @model_validator(mode="after")
    def _default_tier_is_sold(self) -> Self:
        if self.default_tier != DEFAULT_TIER and self.default_tier not in self.tiers:
            raise ValueError(
                f"default_tier {self.default_tier!r} is not one of the offer's tiers "
                f"(default, {', '.join(self.tiers) or 'and no other'})"
            )
        return self

    @model_validator(mode="after")
    def _output_is_bounded(self) -> Self:
        if self.output_price is not None and self.max_output_tokens is None:
            raise ValueError(
                "an offer with an output_price needs max_output_tokens: a request reserves the "
                "most it can cost, which is unbounded without it"
            )
        return self

    @field_serializer("input_price", "output_price", when_used="json")
    def _price_as_number(self, value: Decimal | None) -> int | float | None:
        return None if value is None else json_number(value)

    @field_validator("service")
    @classmethod
    def _service_is_not_reserved(cls, value: str) -> str:
        if value in RESERVED_SERVICES:
            raise ValueError(f"service name {value!r} is reserved by the API's own routes")
        return value

    @field_validator("aliases")
    @classmethod
    def _aliases_once(cls, value: list[str]) -> list[str]:
        seen: set[str] = set()
        for alias in value:
            if alias in seen:
                raise ValueError(f"alias {alias!r} is listed twice")
            seen.add(alias)
        return value

    @field_validator("prompt_template")
    @classmethod
    def _template_is_safe(cls, value: str) -> str:
        PromptTemplate.parse(value)
        return value


OfferName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]*/[a-z0-9][a-z0-9_-]*$")]
"""An offer named ``service/action``."""

Percent = Annotated[Decimal, Field(ge=0, le=100, decimal_places=2)]
PipelineMode = Literal["overwrite", "extend", "pass_through"]


class DealStepSpec(BaseModel):
    """A primary offer of a deal; ``mode`` says what a pipeline step passes on to the next."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    offer: OfferName
    mode: PipelineMode | None = None


class DealSpec(_Entry):
    slug: str = Field(pattern=_SLUG)
    offers: list[DealStepSpec] = Field(min_length=1)
    addons: list[OfferName] = Field(default_factory=list)
    price: Annotated[int, Field(ge=0, le=CREDITS_MAX), JSON_INTEGER] | None = None
    """A fixed price for the primary offers; otherwise their sum less ``price_modifier``."""
    price_modifier: Percent = Decimal(0)
    addons_modifier: Percent = Decimal(0)
    pipeline: StrictBool = False
    enabled: StrictBool = True

    @field_validator("offers", mode="before")
    @classmethod
    def _offer_names(cls, value: Any) -> Any:
        """``offers`` may name an offer as a plain string."""
        if isinstance(value, list):
            return [{"offer": v} if isinstance(v, str) else v for v in value]
        return value

    @model_validator(mode="after")
    def _coherent(self) -> "DealSpec":
        if self.price is not None and self.price_modifier:
            raise ValueError("a deal has either a fixed price or a price_modifier, not both")
        if not self.pipeline and any(step.mode is not None for step in self.offers):
            raise ValueError("mode applies to pipeline steps only (set pipeline: true)")
        if len(set(self.addons)) != len(self.addons):
            raise ValueError("an add-on is listed twice")
        if self.addons_modifier and not self.addons:
            raise ValueError("addons_modifier needs addons")
        return self

    @field_serializer("price_modifier", "addons_modifier", when_used="json")
    def _percent_as_number(self, value: Decimal) -> int | float:
        return json_number(value)

    def modes(self) -> list[PipelineMode | None]:
        """Each primary step's mode: ``overwrite`` unless set, for pipeline steps only."""
        return [(s.mode or "overwrite") if self.pipeline else None for s in self.offers]


def token_priced_in_deal(slug: str, offer: str) -> str:
    return (
        f"deal {slug!r} names offer {offer!r}, which has per-token prices: a deal's price is "
        "fixed when it is submitted, so its offers must have fixed prices too"
    )


def files_in_deal(slug: str, offer: str) -> str:
    return (
        f"deal {slug!r} names offer {offer!r}, which takes file inputs: a deal's inputs are "
        "text only, so offers with file inputs are sold on their own"
    )


class CatalogSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    handlers: list[HandlerSpec] = Field(default_factory=list)
    models: list[ModelSpec] = Field(default_factory=list)
    offers: list[OfferSpec] = Field(default_factory=list)
    deals: list[DealSpec] = Field(default_factory=list)
    prompt_templates: list[PromptTemplateSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _prompt_templates_once(self) -> "CatalogSpec":
        check_names(self.prompt_templates)
        return self

    @model_validator(mode="after")
    def _models_hold_together(self) -> "CatalogSpec":
        check_models(self.models, {h.id for h in self.handlers})
        check_offer_models(self.offers, self.models)
        return self

    @model_validator(mode="after")
    def _deals_name_known_offers(self) -> "CatalogSpec":
        known = {f"{o.service}/{o.action}" for o in self.offers}
        token_priced = {f"{o.service}/{o.action}" for o in self.offers if o.token_priced}
        with_files = {f"{o.service}/{o.action}" for o in self.offers if o.files}
        slugs: set[str] = set()
        for deal in self.deals:
            if deal.slug in slugs:
                raise ValueError(f"deal {deal.slug!r} is defined twice")
            slugs.add(deal.slug)
            for name in [s.offer for s in deal.offers] + deal.addons:
                if name not in known:
                    raise ValueError(
                        f"deal {deal.slug!r} names offer {name!r}, "
                        "which the catalog does not define"
                    )
                if name in token_priced:
                    raise ValueError(token_priced_in_deal(deal.slug, name))
                if name in with_files:
                    raise ValueError(files_in_deal(deal.slug, name))
        return self

    @model_validator(mode="after")
    def _aliases_name_one_offer(self) -> "CatalogSpec":
        """Among enabled offers, as the database holds it: a disabled offer keeps aliases that
        another now has, and the catalog ``export_catalog`` reads stays a valid one."""
        owners: dict[str, str] = {}
        for offer in self.offers:
            if not offer.enabled:
                continue
            name = f"{offer.service}/{offer.action}"
            for alias in offer.aliases:
                if alias in owners:
                    raise ValueError(
                        f"alias {alias!r} is listed twice: by offer {owners[alias]} and by "
                        f"offer {name} (an alias names one enabled offer)"
                    )
                owners[alias] = name
        return self

    @model_validator(mode="after")
    def _offers_name_known_handlers(self) -> "CatalogSpec":
        known = {h.id for h in self.handlers}
        for offer in self.offers:
            if offer.handler not in known:
                raise ValueError(
                    f"offer {offer.service}/{offer.action} names handler {offer.handler!r}, "
                    "which the catalog does not define"
                )
        return self


def load_catalog_file(path: Path) -> CatalogSpec:
    return CatalogSpec.model_validate(yaml.safe_load(path.read_text()) or {})
