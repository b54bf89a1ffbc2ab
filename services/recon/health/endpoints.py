from fastapi import APIRouter, Response, status

from services.recon.alerts.rules import evaluate
from services.recon.dependencies import (
    AlertPolicyDep,
    CompletionDep,
    DeploymentsDep,
    ExpiryDep,
    FilesDep,
    PoolDep,
    RedisDep,
    SettingsDep,
)
from services.recon.health import service
from services.recon.health.schemas import AlertView, Health

router = APIRouter(tags=["health"])


@router.get(
    "/health",
    responses={status.HTTP_503_SERVICE_UNAVAILABLE: {"model": Health}},
    summary=(
        "Postgres and Redis reachability, outbox backlog, stream lag, oldest open request,"
        " completion loop, webhook deliveries waiting, files and their collection, models'"
        " deployments"
    ),
)
async def health(
    pool: PoolDep,
    redis: RedisDep,
    settings: SettingsDep,
    completion: CompletionDep,
    expiry: ExpiryDep,
    files: FilesDep,
    deployments: DeploymentsDep,
    alert_policy: AlertPolicyDep,
    response: Response,
) -> Health:
    """200 when Postgres and Redis both answer, 503 otherwise; the body says what failed. Like
    the backlog, a model whose deployments are all cooling down is a figure here (``all_down``)
    and an alert of Prometheus's, not an unavailable recon."""
    report = await service.check_health(
        pool=pool,
        redis=redis,
        timeout=settings.recon_health_timeout,
        completion=completion.report(),
    )
    report.alerts = [
        AlertView(key=a.key, severity=a.severity, title=a.title, detail=a.detail)
        for a in evaluate(report, alert_policy.current().thresholds)
    ]
    report.expiry = expiry.report()
    report.files = files.report()
    report.models = deployments.report()
    if report.status != "ok":
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return report
