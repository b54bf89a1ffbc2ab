from typing import Any, Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from libs.logs import get_logger
from libs.telemetry import quiet
from services.api.deps import PoolDep, RedisDep
from services.api.error_docs import ERROR_REF

log = get_logger(__name__)
router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    postgres: str
    """``ok``, or the kind of error met (never its text, which names internal hosts)."""
    redis: str
    """``ok``, or the kind of error met."""


DEGRADED = {
    "description": "Postgres or Redis does not answer (the error shape, plus the checks)",
    "content": {
        "application/json": {
            "schema": {"allOf": [{"$ref": ERROR_REF}, {"$ref": "#/components/schemas/Health"}]}
        }
    },
}


@router.get("/health", response_model=Health, responses={503: DEGRADED})
async def health(pool: PoolDep, redis: RedisDep) -> JSONResponse:
    """200 when Postgres and Redis both answer, 503 otherwise. (Probes make no spans.)"""
    checks: dict[str, Any] = {}
    with quiet():
        try:
            await pool.fetchval("SELECT 1")
            checks["postgres"] = "ok"
        except Exception as exc:
            checks["postgres"] = _failed("postgres", exc)
        try:
            await redis.ping()
            checks["redis"] = "ok"
        except Exception as exc:
            checks["redis"] = _failed("redis", exc)
    if all(v == "ok" for v in checks.values()):
        return JSONResponse({"status": "ok", **checks})
    failing = ", ".join(name for name, v in checks.items() if v != "ok")
    return JSONResponse(
        {"detail": f"{failing} unavailable", "code": "unavailable", "status": "degraded", **checks},
        status_code=503,
    )


def _failed(check: str, exc: Exception) -> str:
    """What ``/health`` tells anyone who asks: the kind of failure, never its text (which names
    internal hosts, ports and users); the log has it whole."""
    log.warning("health.check_failed", check=check, error=repr(exc))
    return f"unreachable ({type(exc).__name__})"
