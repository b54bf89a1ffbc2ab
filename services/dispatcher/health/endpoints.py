from fastapi import APIRouter, Response, status

from services.dispatcher.dependencies import DispatcherDep, PoolDep, SettingsDep
from services.dispatcher.health import service
from services.dispatcher.health.schemas import Health

router = APIRouter(tags=["health"])


@router.get(
    "/health",
    responses={status.HTTP_503_SERVICE_UNAVAILABLE: {"model": Health}},
    summary="Postgres reachability, the delivery backlog and what this dispatcher sent",
)
async def health(
    pool: PoolDep, settings: SettingsDep, dispatcher: DispatcherDep, response: Response
) -> Health:
    """200 when Postgres answers, 503 otherwise; the body says what failed."""
    report = await service.check_health(
        pool=pool,
        timeout=settings.dispatcher_health_timeout,
        report=dispatcher.report,
        concurrency=settings.webhook_concurrency,
    )
    if report.status != "ok":
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return report
