"""The deployments' gauges set from one report, and the series of what the report no longer has
(a model disabled or removed, a deployment taken out, a deployment with no call lately for the
rates) removed: each gauge's label sets are remembered from the last report."""

from prometheus_client import Gauge

from services.recon.deployments.schemas import ModelsReport
from services.recon.metrics import registry

Labels = tuple[str, ...]


class DeploymentGauges:
    def __init__(self) -> None:
        self._set: dict[Gauge, set[Labels]] = {}

    def set(self, report: ModelsReport) -> None:
        values: dict[Gauge, dict[Labels, float]] = {
            gauge: {}
            for gauge in (
                registry.DEPLOYMENT_IN_FLIGHT,
                registry.DEPLOYMENT_COOLING,
                registry.DEPLOYMENT_ERROR_RATE,
                registry.DEPLOYMENT_LATENCY,
                registry.MODEL_DEPLOYMENTS_UP,
                registry.MODEL_DEPLOYMENTS,
            )
        }
        for name, versions in report.items():
            for version, model in versions.items():
                values[registry.MODEL_DEPLOYMENTS][name, version] = len(model.deployments)
                values[registry.MODEL_DEPLOYMENTS_UP][name, version] = sum(
                    not d.cooling for d in model.deployments
                )
                for d in model.deployments:
                    labels: Labels = (name, version, d.integration)
                    values[registry.DEPLOYMENT_IN_FLIGHT][labels] = d.in_flight
                    values[registry.DEPLOYMENT_COOLING][labels] = int(d.cooling)
                    if d.error_rate_5m is not None:
                        values[registry.DEPLOYMENT_ERROR_RATE][labels] = d.error_rate_5m
                    if d.latency_ms_5m is not None:
                        values[registry.DEPLOYMENT_LATENCY][labels] = d.latency_ms_5m / 1000
        for gauge, series in values.items():
            for key, value in series.items():
                gauge.labels(*key).set(value)
            for gone in self._set.get(gauge, set()) - series.keys():
                gauge.remove(*gone)
            self._set[gauge] = set(series)
