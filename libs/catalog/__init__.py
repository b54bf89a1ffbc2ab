"""The catalog as data: prompt templates, the declarative catalog file, and applying it."""

from libs.catalog.apply import (
    AliasTakenError,
    FileInputsDealError,
    ModelInUseError,
    NotForDealsError,
    TokenPricedDealError,
    UnknownReferenceError,
    apply_catalog,
    disable,
    disable_model,
    upsert_deal,
    upsert_handler,
    upsert_model,
    upsert_offer,
)
from libs.catalog.export import catalog_data, catalog_yaml, export_catalog
from libs.catalog.models import ModelSpec
from libs.catalog.pricing import (
    TokenPrices,
    deal_price,
    discounted,
    input_token_bound,
    shares,
    token_cost,
    token_cost_sql,
)
from libs.catalog.spec import (
    CatalogSpec,
    DealSpec,
    DealStepSpec,
    HandlerSpec,
    OfferSpec,
    PipelineMode,
    load_catalog_file,
)
from libs.catalog.template import PromptTemplate, TemplateError

__all__ = [
    "AliasTakenError",
    "ModelInUseError",
    "CatalogSpec",
    "DealSpec",
    "DealStepSpec",
    "FileInputsDealError",
    "HandlerSpec",
    "ModelSpec",
    "NotForDealsError",
    "OfferSpec",
    "PipelineMode",
    "PromptTemplate",
    "TemplateError",
    "TokenPricedDealError",
    "TokenPrices",
    "UnknownReferenceError",
    "apply_catalog",
    "catalog_data",
    "catalog_yaml",
    "deal_price",
    "disable",
    "disable_model",
    "discounted",
    "export_catalog",
    "input_token_bound",
    "load_catalog_file",
    "shares",
    "token_cost",
    "token_cost_sql",
    "upsert_deal",
    "upsert_handler",
    "upsert_model",
    "upsert_offer",
]
