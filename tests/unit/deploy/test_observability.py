"""deploy/: Grafana dashboards, Prometheus scrape config and alert rules, and the compose services
that load them, checked against the metrics the code really exports."""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY

import services.api.metrics
import services.dispatcher.metrics
import services.recon.metrics.registry
import services.worker.metrics
from services.api.settings import ApiSettings
from services.dispatcher.settings import DispatcherSettings
from services.recon.settings import ReconSettings
from services.worker.settings import WorkerSettings

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"
DASHBOARDS = sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
PROMETHEUS = DEPLOY / "prometheus" / "prometheus.yml"

METRIC_MODULES = (
    services.api.metrics,
    services.worker.metrics,
    services.recon.metrics.registry,
    services.dispatcher.metrics,
)
BUILT_IN = {"up"}
"""Series Prometheus makes itself for every target."""
PROMQL_WORDS = {
    # aggregations, functions and keywords that may appear in our queries
    *"sum min max avg count topk bottomk sort sort_desc by without on ignoring group_left".split(),
    *"group_right rate irate increase delta histogram_quantile absent abs clamp_min and or".split(),
    *"unless offset bool humanize humanizeDuration humanizePercentage".split(),
}
_SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_count", "_sum")}


def exported_names() -> set[str]:
    """Every series name the API, worker and recon metrics can produce, from the registry."""
    assert all(module.__name__ for module in METRIC_MODULES)  # imported: registered
    names: set[str] = set()
    for family in REGISTRY.collect():
        names.add(family.name)
        names.update(family.name + suffix for suffix in _SUFFIXES.get(family.type, ()))
    return {n for n in names if n.startswith("relai_")}


def metric_names(expr: str) -> set[str]:
    """The series names a PromQL expression reads."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)  # strings
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # ranges
    expr = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", expr)  # grouping labels
    words = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr))
    return {w for w in words if w not in PROMQL_WORDS and not re.fullmatch(r"e\d*", w)}


def dashboard_queries() -> list[tuple[str, str, str]]:
    found = []
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel["targets"]:
                if "expr" in target:
                    found.append((path.name, panel["title"], target["expr"]))
    return found


def alert_rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(ALERTS.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def test_the_query_parser_sees_metric_names() -> None:
    assert metric_names(
        'histogram_quantile(0.95, sum by (le, route) (rate(relai_x_bucket{a="b"}[5m])))'
    ) == {"relai_x_bucket"}
    assert metric_names("absent(up{job='w'} == 1) or relai_y > 1e3") == {"up", "relai_y"}


def test_both_dashboards_exist_and_load() -> None:
    assert {p.stem for p in DASHBOARDS} == {"operations", "business"}
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text())
        assert dashboard["uid"], path.name
        assert dashboard["title"], path.name
        assert dashboard["panels"], path.name
        ids = [panel["id"] for panel in dashboard["panels"]]
        assert len(ids) == len(set(ids)), path.name
        for panel in dashboard["panels"]:
            assert panel["targets"], (path.name, panel["title"])
            assert panel["datasource"]["uid"] in {"prometheus", "postgres"}


def test_every_dashboard_query_reads_metrics_the_code_exports() -> None:
    exported = exported_names() | BUILT_IN
    queries = dashboard_queries()
    assert len(queries) > 20
    unknown = {
        (dashboard, title, name)
        for dashboard, title, expr in queries
        for name in metric_names(expr) - exported
    }
    assert unknown == set()


def test_every_exported_metric_is_on_a_dashboard_or_in_an_alert() -> None:
    read = {name for _, _, expr in dashboard_queries() for name in metric_names(expr)}
    read |= {name for rule in alert_rules() for name in metric_names(rule["expr"])}
    unread = set()
    for family in REGISTRY.collect():
        if not family.name.startswith("relai_"):
            continue
        shown_as = {
            "counter": {family.name + "_total"},
            "histogram": {family.name + "_bucket", family.name + "_count"},
        }.get(family.type, {family.name})
        if not shown_as & read:
            unread.add(family.name)
    assert unread == set()


def test_postgres_panels_read_the_ledger_for_per_user_figures() -> None:
    business = json.loads((DEPLOY / "grafana" / "dashboards" / "business.json").read_text())
    sql = [t["rawSql"] for p in business["panels"] for t in p["targets"] if "rawSql" in t]
    assert sql
    assert all("credit_ledger" in q and "$__timeFilter" in q for q in sql)


def test_every_alert_reads_metrics_the_code_exports() -> None:
    exported = exported_names() | BUILT_IN
    rules = alert_rules()
    names = {rule["alert"] for rule in rules}
    assert {
        "RelaiRelayStalled",
        "RelaiWorkersAbsent",
        "RelaiTasksLagHigh",
        "RelaiJobErrorRateHigh",
        "RelaiHttpErrorRateHigh",
        "RelaiStuckRequests",
        "RelaiDispatcherDown",
        "RelaiWebhookBacklogOld",
        "RelaiWebhookDeliveriesFailing",
        "RelaiWebhookEndpointsDisabled",
    } <= names
    for rule in rules:
        assert metric_names(rule["expr"]) <= exported, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]


def test_the_operations_dashboard_shows_webhook_deliveries() -> None:
    operations = json.loads((DEPLOY / "grafana" / "dashboards" / "operations.json").read_text())
    reads = {
        panel["title"]: set().union(*(metric_names(t["expr"]) for t in panel["targets"]))
        for panel in operations["panels"]
        if "webhook" in panel["title"].lower()
    }
    assert reads == {
        "Webhook deliveries by outcome": {"relai_webhook_deliveries_total"},
        "Webhook attempt latency p95": {"relai_webhook_attempt_seconds_bucket"},
        "Webhook backlog (pending deliveries)": {
            "relai_webhook_backlog",
            "relai_webhook_in_flight",
        },
        "Oldest pending webhook delivery": {"relai_webhook_oldest_pending_age_seconds"},
        "Webhook endpoints disabled, deliveries given up": {
            "relai_webhook_disabled_endpoints",
            "relai_webhook_endpoints_disabled_total",
            "relai_webhook_deliveries_failed_last_hour",
        },
    }


def test_the_webhook_alerts_watch_the_dispatcher_job_and_recons_threshold() -> None:
    rules = {rule["alert"]: rule for rule in alert_rules()}
    assert 'up{job="relai-dispatcher"}' in rules["RelaiDispatcherDown"]["expr"]
    (threshold,) = re.findall(r"> (\d+)", rules["RelaiWebhookBacklogOld"]["expr"])
    assert float(threshold) == ReconSettings().webhook_backlog_alert_s


def test_the_5xx_alert_counts_server_errors_only_out_of_the_answers_given() -> None:
    """A client that left (499, as the API counts it) is neither a server error nor an answer:
    a burst of disconnects must neither trip the alert nor dilute it."""
    (rule,) = [r for r in alert_rules() if r["alert"] == "RelaiHttpErrorRateHigh"]
    errors, answers = rule["expr"].split("/")
    (numerator,) = re.findall(r'status=~"([^"]+)"', errors)
    for status in ("500", "502", "503", "504"):
        assert re.fullmatch(numerator, status), status
    for status in ("499", "404", "429", "200"):
        assert not re.fullmatch(numerator, status), status
    assert re.findall(r'status!="([^"]+)"', answers) == ["499"]


def test_promtool_accepts_the_rules_and_the_config() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        # CI installs Prometheus and requires the check; a fresh machine may not have it.
        assert not os.environ.get("RELAI_REQUIRE_PROMTOOL"), "promtool is not on PATH"
        pytest.skip("promtool is not on PATH (it ships with Prometheus); YAML checked above")
    rules = subprocess.run(
        [promtool, "check", "rules", str(ALERTS)], capture_output=True, text=True, check=False
    )
    assert rules.returncode == 0, rules.stdout + rules.stderr


def test_prometheus_scrapes_each_service_on_its_metrics_port() -> None:
    config = yaml.safe_load(PROMETHEUS.read_text())
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]
    ports = {
        job["job_name"]: (job["dns_sd_configs"][0]["names"], job["dns_sd_configs"][0]["port"])
        for job in config["scrape_configs"]
    }
    assert ports == {
        "relai-api": (["api"], ApiSettings().api_metrics_port),
        "relai-worker": (["worker"], WorkerSettings().worker_metrics_port),
        "relai-recon": (["recon"], ReconSettings().recon_metrics_port),
        "relai-dispatcher": (["dispatcher"], DispatcherSettings().dispatcher_metrics_port),
    }


def test_compose_provisions_prometheus_grafana_and_jaeger() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]

    def mounts(name: str) -> dict[str, str]:
        pairs = [volume.split(":")[:2] for volume in services[name]["volumes"]]
        return {target: source for source, target in pairs if source.startswith("./")}

    prometheus = mounts("prometheus")
    assert prometheus == {"/etc/prometheus": "./deploy/prometheus"}
    grafana = mounts("grafana")
    assert grafana == {
        "/etc/grafana/provisioning": "./deploy/grafana/provisioning",
        "/var/lib/grafana/dashboards": "./deploy/grafana/dashboards",
    }
    for source in (*prometheus.values(), *grafana.values()):
        assert (ROOT / source).is_dir(), source
    provider = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "dashboards" / "dashboards.yml").read_text()
    )
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    sources = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "datasources" / "datasources.yml").read_text()
    )
    assert {d["uid"] for d in sources["datasources"]} == {"prometheus", "jaeger", "postgres"}
    for name in ("api", "worker", "recon", "dispatcher", "migrate"):
        env = services[name]["environment"]
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://jaeger:4318", name
    assert services["recon"]["environment"]["RELAI_RECON_METRICS_PORT"] == str(
        ReconSettings().recon_metrics_port
    )
    assert services["api"]["environment"]["RELAI_API_METRICS_PORT"] == str(
        ApiSettings().api_metrics_port
    )
    assert services["dispatcher"]["environment"]["RELAI_DISPATCHER_METRICS_PORT"] == str(
        DispatcherSettings().dispatcher_metrics_port
    )
    for name in ("api", "worker", "recon", "dispatcher"):  # metrics stay on the compose network
        published = {str(p).split(":")[-1] for p in services[name].get("ports", [])}
        assert not published & {"9101", "9102", "9103", "9104"}, name
