"""The catalog as data: prompt templates, the declarative catalog file, and applying it."""

from libs.catalog.apply import (
    UnknownReferenceError,
    apply_catalog,
    disable,
    upsert_deal,
    upsert_handler,
    upsert_offer,
)
from libs.catalog.export import catalog_data, catalog_yaml, export_catalog
from libs.catalog.pricing import deal_price, discounted, shares
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
    "CatalogSpec",
    "DealSpec",
    "DealStepSpec",
    "HandlerSpec",
    "OfferSpec",
    "PipelineMode",
    "PromptTemplate",
    "TemplateError",
    "UnknownReferenceError",
    "apply_catalog",
    "catalog_data",
    "catalog_yaml",
    "deal_price",
    "disable",
    "discounted",
    "export_catalog",
    "load_catalog_file",
    "shares",
    "upsert_deal",
    "upsert_handler",
    "upsert_offer",
]
