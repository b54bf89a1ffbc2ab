"""The catalog as data: prompt templates, the declarative catalog file, and applying it."""

from libs.catalog.apply import (
    AliasTakenError,
    FileInputsDealError,
    NotForDealsError,
    TokenPricedDealError,
    apply_catalog,
    disable,
    upsert_deal,
    upsert_handler,
    upsert_offer,
)
from libs.catalog.errors import ModelInUseError, UnknownReferenceError
from libs.catalog.export import catalog_data, catalog_yaml, export_catalog
from libs.catalog.model_store import disable_model, upsert_model
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
from libs.catalog.prompt_store import (
    PromptTemplateInactiveError,
    PromptTemplateNotFoundError,
    Rendered,
    StoredPromptTemplate,
    disable_prompt_template,
    get_prompt_template,
    list_prompt_templates,
    render_prompt_template,
    upsert_prompt_template,
)
from libs.catalog.prompt_templates import PromptTemplateSpec, VariablesError, fill
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
    "PromptTemplateInactiveError",
    "PromptTemplateNotFoundError",
    "PromptTemplateSpec",
    "Rendered",
    "StoredPromptTemplate",
    "VariablesError",
    "TemplateError",
    "TokenPricedDealError",
    "TokenPrices",
    "UnknownReferenceError",
    "apply_catalog",
    "catalog_data",
    "catalog_yaml",
    "deal_price",
    "disable",
    "disable_prompt_template",
    "disable_model",
    "discounted",
    "export_catalog",
    "fill",
    "get_prompt_template",
    "input_token_bound",
    "list_prompt_templates",
    "load_catalog_file",
    "render_prompt_template",
    "shares",
    "token_cost",
    "token_cost_sql",
    "upsert_deal",
    "upsert_handler",
    "upsert_model",
    "upsert_offer",
    "upsert_prompt_template",
]
