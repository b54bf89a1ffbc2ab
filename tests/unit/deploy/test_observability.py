"""deploy/: Grafana dashboards, Prometheus scrape config and alert rules, and the compose services
that load them, checked against the metrics the code really exports."""

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

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
from tests.dashboards import metric_names, panel_queries
from tests.monitoring import (
    ALERTMANAGER_YML,
    ALERTS_TEST_YML,
    DISCORD_URL_PLACEHOLDER,
    load_yaml,
    run_tool,
    tool,
)

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"
DASHBOARDS = sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
PROMETHEUS = DEPLOY / "prometheus" / "prometheus.yml"
DATASOURCES = DEPLOY / "grafana" / "provisioning" / "datasources" / "datasources.yml"

METRIC_MODULES = (
    services.api.metrics,
    services.worker.metrics,
    services.recon.metrics.registry,
    services.dispatcher.metrics,
)
BUILT_IN = {"up"}
"""Series Prometheus makes itself for every target."""
_SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_count", "_sum")}
DATA_SOURCES = {
    # type: the field of a panel's target that holds its query
    "prometheus": "expr",
    "grafana-postgresql-datasource": "rawSql",
    "loki": "expr",
    "tempo": "query",
}


def exported_names() -> set[str]:
    """Every series name the API, worker and recon metrics can produce, from the registry."""
    assert all(module.__name__ for module in METRIC_MODULES)  # imported: registered
    names: set[str] = set()
    for family in REGISTRY.collect():
        names.add(family.name)
        names.update(family.name + suffix for suffix in _SUFFIXES.get(family.type, ()))
    return {n for n in names if n.startswith("relai_")}


def dashboard_queries() -> list[tuple[str, str, str]]:
    """(dashboard, panel, PromQL) of every Prometheus query of the dashboards."""
    return [(q.dashboard, q.panel, q.text) for q in panel_queries() if q.datasource == "prometheus"]


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
    sources = yaml.safe_load(DATASOURCES.read_text())["datasources"]
    provisioned = {d["uid"]: d["type"] for d in sources}
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text())
        assert dashboard["uid"], path.name
        assert dashboard["title"], path.name
        assert dashboard["panels"], path.name
        ids = [panel["id"] for panel in dashboard["panels"]]
        assert len(ids) == len(set(ids)), path.name
        for panel in dashboard["panels"]:
            assert panel["targets"], (path.name, panel["title"])
            source = panel["datasource"]
            assert provisioned[source["uid"]] == source["type"], (path.name, panel["title"])


def test_every_panel_query_is_of_a_kind_a_test_runs() -> None:
    """PromQL runs on a real Prometheus (tests/e2e/test_prometheus.py), SQL on a real Postgres
    (tests/integration/deploy/test_dashboard_sql.py), the Loki and Tempo queries are checked
    against what Alloy ships and the code sets (test_telemetry_stack.py): no other kind."""
    queries = panel_queries()
    kinds = {q.datasource for q in queries}
    assert kinds == set(DATA_SOURCES)
    for q in queries:
        assert q.target.get(DATA_SOURCES[q.datasource]), (q.dashboard, q.panel)
        assert q.text == q.target[DATA_SOURCES[q.datasource]], (q.dashboard, q.panel)


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
        "RelaiModelAllDeploymentsDown",
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


def test_the_operations_dashboard_shows_each_models_deployments() -> None:
    operations = json.loads((DEPLOY / "grafana" / "dashboards" / "operations.json").read_text())
    reads = {
        panel["title"]: set().union(*(metric_names(t["expr"]) for t in panel["targets"]))
        for panel in operations["panels"]
        if "model deployments" in panel["title"].lower()
    }
    assert reads == {
        "Model deployments up, per model version": {
            "relai_model_deployments_up",
            "relai_model_deployments",
        },
        "Model deployments cooling down": {"relai_deployment_cooling"},
        "Model deployments: calls in flight": {"relai_deployment_in_flight"},
        "Model deployments: error rate (5 min)": {"relai_deployment_error_rate"},
        "Model deployments: mean latency (5 min)": {"relai_deployment_latency_seconds"},
    }
    # One figure per model version and deployment, however many recon replicas report it.
    for panel in operations["panels"]:
        if panel["title"] in reads:
            for target in panel["targets"]:
                assert target["expr"].startswith("max by (model, version"), target["expr"]


def test_all_deployments_down_is_alerted_only_for_a_model_version_that_has_some() -> None:
    (rule,) = [r for r in alert_rules() if r["alert"] == "RelaiModelAllDeploymentsDown"]
    assert rule["expr"] == "relai_model_deployments_up == 0 and relai_model_deployments > 0"
    assert rule["for"] == "1m"
    assert rule["labels"]["severity"] == "critical"


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


def test_promtool_accepts_the_rules_and_the_config(tmp_path: Path) -> None:
    promtool = tool("promtool")
    run_tool([promtool, "check", "rules", str(ALERTS)])
    # The config as Prometheus loads it in compose, its rule file where this checkout has it.
    config = yaml.safe_load(PROMETHEUS.read_text())
    config["rule_files"] = [str(ALERTS)]
    checked = tmp_path / "prometheus.yml"
    checked.write_text(yaml.safe_dump(config))
    run_tool([promtool, "check", "config", str(checked)])


def test_each_alert_fires_and_stays_quiet_in_its_promtool_unit_tests() -> None:
    promtool = tool("promtool")
    out = run_tool([promtool, "test", "rules", ALERTS_TEST_YML.name], cwd=ALERTS_TEST_YML.parent)
    assert "SUCCESS" in out
    cases = load_yaml(ALERTS_TEST_YML)
    assert cases["rule_files"] == [ALERTS.name]
    fires: set[str] = set()
    quiet: set[str] = set()
    for test in cases["tests"]:
        for case in test["alert_rule_test"]:
            (fires if case["exp_alerts"] else quiet).add(case["alertname"])
    names = {rule["alert"] for rule in alert_rules()}
    assert fires == names, "an alert never seen firing"
    assert quiet == names, "an alert never seen quiet"


def test_every_alert_names_its_cause() -> None:
    """A ``cause`` on each alert, one alert per cause: what Alertmanager groups and inhibits by."""
    causes = [rule["labels"]["cause"] for rule in alert_rules()]
    for cause in causes:
        assert re.fullmatch(r"(\{\{ \$labels\.\w+ \}\})?[a-z_]+", cause), cause
    assert len(causes) == len(set(causes)), "two alerts of one cause"


def test_alertmanager_accepts_its_config_and_routes_by_cause() -> None:
    amtool = tool("amtool")
    run_tool([amtool, "check-config", str(ALERTMANAGER_YML)])
    config = load_yaml(ALERTMANAGER_YML)
    assert "cause" in config["route"]["group_by"]
    (discord,) = [r for r in config["receivers"] if r["name"] == config["route"]["receiver"]]
    (target,) = discord["discord_configs"]
    assert target["webhook_url"] == DISCORD_URL_PLACEHOLDER
    assert target["send_resolved"] is True
    # Recon's alert silences Prometheus's of the same cause (and integration, for budgets).
    recon = [r for r in config["inhibit_rules"] if r["source_matchers"] == ['origin="recon"']]
    assert recon == [
        {
            "source_matchers": ['origin="recon"'],
            "target_matchers": ['origin!="recon"'],
            "equal": ["cause", "integration"],
        }
    ]


def test_the_start_script_writes_the_webhook_url_into_the_config(tmp_path: Path) -> None:
    """start.sh (compose's and Kubernetes' entrypoint), run as they run it, with this machine's
    sh and awk; the Alertmanager it execs replaced by a stand-in that prints its arguments."""
    url = "https://discord.com/api/webhooks/123/a-token_&?x=1"

    def start(env: dict[str, str]) -> tuple[str, str]:
        rendered = tmp_path / "alertmanager.yml"
        done = subprocess.run(
            ["sh", str(DEPLOY / "alertmanager" / "start.sh"), "--storage.path=/alertmanager"],
            env={
                "PATH": os.environ["PATH"],
                "ALERTMANAGER_CONFIG": str(ALERTMANAGER_YML),
                "ALERTMANAGER_RENDERED": str(rendered),
                "ALERTMANAGER": "echo",
                **env,
            },
            capture_output=True,
            text=True,
            check=True,
        )
        return done.stdout.strip(), rendered.read_text()

    argv, text = start({"RELAI_ALERT_WEBHOOK_URL": url})
    assert argv == f"--config.file={tmp_path / 'alertmanager.yml'} --storage.path=/alertmanager"
    assert text == ALERTMANAGER_YML.read_text().replace(DISCORD_URL_PLACEHOLDER, url)
    (target,) = yaml.safe_load(text)["receivers"][0]["discord_configs"]
    assert target["webhook_url"] == url
    run_tool([tool("amtool"), "check-config", str(tmp_path / "alertmanager.yml")])
    assert start({})[1] == ALERTMANAGER_YML.read_text()  # unset: left as shipped


def test_recon_raises_only_causes_prometheus_also_alerts_on() -> None:
    """Each cause recon alerts on has its Prometheus alert (the one recon's silences), as the
    mapping in docs/operations.md says."""
    source = (ROOT / "services" / "recon" / "alerts" / "rules.py").read_text()
    recon = {key.split(":")[0] for key in re.findall(r'Alert\(\s*f?"([a-z_]+)', source)}
    assert "workers_absent" in recon
    prometheus = {}
    for rule in alert_rules():
        cause = rule["labels"]["cause"]
        if "{{" in cause:  # templated on a label: its values are postgres and redis
            for source_name in ("postgres", "redis"):
                prometheus[cause.replace("{{ $labels.source }}", source_name)] = rule["alert"]
        else:
            prometheus[cause] = rule["alert"]
    assert recon <= set(prometheus)
    docs = (ROOT / "docs" / "operations.md").read_text()
    for cause in recon:
        row = f"| `{cause}` | `{prometheus[cause]}` |"
        assert row in docs, row


def test_prometheus_scrapes_each_service_on_its_metrics_port() -> None:
    config = yaml.safe_load(PROMETHEUS.read_text())
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]
    (managers,) = config["alerting"]["alertmanagers"]
    assert managers["static_configs"] == [{"targets": ["alertmanager:9093"]}]
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


def test_compose_provisions_prometheus_alertmanager_and_grafana() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]

    def mounts(name: str) -> dict[str, str]:
        pairs = [volume.split(":")[:2] for volume in services[name]["volumes"]]
        return {target: source for source, target in pairs if source.startswith("./")}

    prometheus = mounts("prometheus")
    assert prometheus == {"/etc/prometheus": "./deploy/prometheus"}
    alertmanager = mounts("alertmanager")
    assert alertmanager == {"/etc/alertmanager": "./deploy/alertmanager"}
    assert services["alertmanager"]["entrypoint"] == ["/bin/sh", "/etc/alertmanager/start.sh"]
    assert services["alertmanager"]["environment"] == {
        "RELAI_ALERT_WEBHOOK_URL": "${RELAI_ALERT_WEBHOOK_URL:-}"
    }
    assert "9093:9093" in services["alertmanager"]["ports"]
    assert services["recon"]["environment"]["RELAI_RECON_ALERTMANAGER_URL"] == (
        "http://alertmanager:9093"
    )
    grafana = mounts("grafana")
    assert grafana == {
        "/etc/grafana/provisioning": "./deploy/grafana/provisioning",
        "/var/lib/grafana/dashboards": "./deploy/grafana/dashboards",
    }
    for source in (*prometheus.values(), *alertmanager.values(), *grafana.values()):
        assert (ROOT / source).is_dir(), source
    provider = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "dashboards" / "dashboards.yml").read_text()
    )
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    sources = yaml.safe_load(DATASOURCES.read_text())
    assert {d["uid"] for d in sources["datasources"]} == {"prometheus", "tempo", "loki", "postgres"}
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
