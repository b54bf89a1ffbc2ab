"""Every router of the dispatcher, in one place."""

from fastapi import APIRouter

from services.dispatcher.health.endpoints import router as health_router

router = APIRouter()
router.include_router(health_router)
