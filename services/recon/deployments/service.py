"""The deployments loop: every ``RELAI_RECON_DEPLOYMENTS_INTERVAL_S``, each enabled model's
deployments (Postgres) and how they fare (Redis, as the workers leave it): kept for ``/health``
and set on the gauges. Every replica runs it; it only reads.

A read that fails empties the report (``/health`` says null rather than figures grown old) and
leaves the gauges as they were, as the metrics sampler does."""

from __future__ import annotations

from redis.asyncio import Redis
from redis.exceptions import RedisError

from libs.db import DATABASE_ERRORS, PgPool
from libs.loops import every
from services.recon.deployments import figures as redis_figures
from services.recon.deployments import repository
from services.recon.deployments.gauges import DeploymentGauges
from services.recon.deployments.schemas import DeploymentHealth, ModelHealth, ModelsReport


class DeploymentsLoop:
    def __init__(self, pool: PgPool, redis: Redis, *, interval_s: float) -> None:
        self._pool = pool
        self._redis = redis
        self._interval_s = interval_s
        self._report: ModelsReport | None = None
        self._gauges = DeploymentGauges()

    def report(self) -> ModelsReport | None:
        """As of the last read; None before the first, or when the last failed."""
        return self._report

    async def run_forever(self) -> None:
        await every(
            self._interval_s,
            self.run_once,
            name="deployments",
            expected=(*DATABASE_ERRORS, RedisError, OSError, TimeoutError),
        )

    async def run_once(self) -> ModelsReport:
        try:
            async with self._pool.acquire() as conn:
                models = await repository.enabled_models(conn)
            names = (d.integration for m in models for d in m.deployments)
            figures = await redis_figures.read_figures(self._redis, names)
        except Exception:
            self._report = None
            raise
        report: ModelsReport = {}
        for model in models:
            report.setdefault(model.name, {})[model.version] = _model_health(model, figures)
        self._gauges.set(report)
        self._report = report
        return report


def _model_health(
    model: repository.CatalogModel, figures: dict[str, redis_figures.DeploymentFigures]
) -> ModelHealth:
    deployments = []
    for deployment in model.deployments:
        f = figures[deployment.integration]
        deployments.append(
            DeploymentHealth(
                integration=deployment.integration,
                weight=deployment.weight,
                in_flight=f.in_flight,
                cooling=f.cooling,
                cooling_s=f.cooling_s,
                calls_5m=f.calls,
                errors_5m=f.errors,
                error_rate_5m=f.errors / f.calls if f.calls else None,
                latency_ms_5m=f.latency_ms / f.calls if f.calls else None,
            )
        )
    return ModelHealth(
        all_down=bool(deployments) and all(d.cooling for d in deployments),
        deployments=deployments,
    )
