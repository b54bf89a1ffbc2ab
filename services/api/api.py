"""Every router of the API, in one place."""

from fastapi import APIRouter

from services.api import health
from services.api.admin import catalog_endpoints as admin_catalog
from services.api.admin import endpoints as admin
from services.api.admin import usage_endpoints as admin_usage
from services.api.auth import endpoints as auth
from services.api.catalog import endpoints as catalog
from services.api.deals import endpoints as deals
from services.api.openai import endpoints as openai
from services.api.requests import endpoints as requests
from services.api.webhooks import endpoints as webhooks
from services.api.ws import endpoints as ws

router = APIRouter()
router.include_router(health.router)
router.include_router(auth.router)
router.include_router(requests.router)
router.include_router(catalog.router)  # after requests: GET /svc/request/{id} must win
router.include_router(deals.router)
router.include_router(ws.router)
router.include_router(admin.router)
router.include_router(admin_catalog.router)
router.include_router(admin_usage.router)
router.include_router(openai.router)
router.include_router(webhooks.router)
