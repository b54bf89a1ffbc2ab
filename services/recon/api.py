"""Every router of recon, in one place."""

from fastapi import APIRouter

from services.recon.health.endpoints import router as health_router

router = APIRouter()
router.include_router(health_router)
