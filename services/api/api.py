"""Every router of the API, in one place."""

from fastapi import APIRouter

from services.api import health
from services.api.account import endpoints as account
from services.api.admin import catalog_endpoints as admin_catalog
from services.api.admin import config_endpoints as admin_configs
from services.api.admin import endpoints as admin
from services.api.admin import operations_endpoints as admin_operations
from services.api.admin import prompt_endpoints as admin_prompts
from services.api.admin import usage_endpoints as admin_usage
from services.api.auth import endpoints as auth
from services.api.capabilities import endpoints as capabilities
from services.api.catalog import endpoints as catalog
from services.api.deals import endpoints as deals
from services.api.files import endpoints as files
from services.api.openai import endpoints as openai
from services.api.requests import endpoints as requests
from services.api.webhooks import endpoints as webhooks
from services.api.ws import endpoints as ws


def routes(*, multipart_max_bytes: int | None = None) -> APIRouter:
    """Every route. Those that take files (``POST /files``, ``POST /svc/{service}/{action}``)
    take bodies up to ``multipart_max_bytes`` as they arrive (the others the app's
    ``max_body_size``); ``services.api.hardening`` has the limits of declared lengths."""
    router = APIRouter()
    router.include_router(health.router)
    router.include_router(auth.router)
    router.include_router(account.router)
    router.include_router(requests.router)
    router.include_router(requests.submit_router, max_body_size=multipart_max_bytes)
    router.include_router(catalog.router)  # after requests: GET /svc/request/{id} must win
    router.include_router(deals.router)
    router.include_router(capabilities.router)
    router.include_router(files.router, max_body_size=multipart_max_bytes)
    router.include_router(ws.router)
    router.include_router(admin.router)
    router.include_router(admin_catalog.router)
    router.include_router(admin_prompts.router)
    router.include_router(admin_usage.router)
    router.include_router(admin_configs.router)
    router.include_router(admin_operations.router)
    router.include_router(openai.router)
    router.include_router(webhooks.router)
    return router


router = routes()
"""The routes, for the OpenAPI document's tests (the app includes its own, with its limits)."""
