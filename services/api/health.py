from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from libs.telemetry import quiet
from services.api.deps import PoolDep, RedisDep

router = APIRouter(tags=["health"])


@router.get("/health")
async def health(pool: PoolDep, redis: RedisDep) -> JSONResponse:
    """200 when Postgres and Redis both answer, 503 otherwise. (Probes make no spans.)"""
    checks: dict[str, Any] = {}
    with quiet():
        try:
            await pool.fetchval("SELECT 1")
            checks["postgres"] = "ok"
        except Exception as exc:
            checks["postgres"] = f"error: {exc!r}"
        try:
            await redis.ping()
            checks["redis"] = "ok"
        except Exception as exc:
            checks["redis"] = f"error: {exc!r}"
    healthy = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ok" if healthy else "degraded", **checks}, status_code=200 if healthy else 503
    )
