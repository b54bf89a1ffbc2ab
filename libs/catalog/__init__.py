"""The catalog as data: prompt templates, the declarative catalog file, and applying it."""

from libs.catalog.apply import apply_catalog
from libs.catalog.spec import CatalogSpec, HandlerSpec, OfferSpec, load_catalog_file
from libs.catalog.template import PromptTemplate, TemplateError

__all__ = [
    "CatalogSpec",
    "HandlerSpec",
    "OfferSpec",
    "PromptTemplate",
    "TemplateError",
    "apply_catalog",
    "load_catalog_file",
]
