"""deploy/k8s, checked without a cluster: every manifest parses and is listed, each process runs
a console script of this project with settings it knows, probes reach the ports the processes
listen on, and KEDA scales the workers on the stream and group they read."""

import re
import tomllib
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from libs.contracts import TASKS_GROUP, TASKS_STREAM
from libs.settings import CommonSettings
from services.api.settings import ApiSettings
from services.dispatcher.settings import DispatcherSettings
from services.recon.settings import ReconSettings
from services.worker.settings import WorkerSettings

ROOT = Path(__file__).resolve().parents[3]
K8S = ROOT / "deploy" / "k8s"
SETTINGS: dict[str, type[CommonSettings]] = {
    "relai-api": ApiSettings,
    "relai-worker": WorkerSettings,
    "relai-recon": ReconSettings,
    "relai-dispatcher": DispatcherSettings,
    "relai-migrate": CommonSettings,
}
SERVERS = {"DATABASE_URL", "REDIS_URL"}
STANDARD = {"OTEL_EXPORTER_OTLP_ENDPOINT"}
BOOTSTRAP_VARS = {
    match
    for path in (ROOT / "config").glob("*.bootstrap.yaml")
    for match in re.findall(r"\$\{([A-Z_]+)", path.read_text())
}
"""What the shipped bootstrap configs read from the environment (the Fernet keys)."""


def _documents() -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    documents: list[dict[str, Any]] = []
    for name in kustomization["resources"]:
        documents.extend(d for d in yaml.safe_load_all((K8S / name).read_text()) if d)
    return documents


DOCUMENTS = _documents()


def _named(kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in DOCUMENTS if d["kind"] == kind}


def _workloads() -> dict[str, dict[str, Any]]:
    return {**_named("Deployment"), **_named("Job")}


def _env_names(container: dict[str, Any]) -> set[str]:
    names = {e["name"] for e in container.get("env", [])}
    config = _named("ConfigMap")
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            names |= set(config[source["configMapRef"]["name"]]["data"])
        if "secretRef" in source:
            names |= _secret_keys(source["secretRef"]["name"])
    return names


def _secret_keys(name: str) -> set[str]:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    (generator,) = [g for g in kustomization["secretGenerator"] if g["name"] == name]
    keys = set()
    for env_file in generator["envs"]:
        example = (K8S / f"{env_file}.example").read_text()
        keys |= {
            line.split("=", 1)[0]
            for line in example.splitlines()
            if line.strip() and not line.startswith("#")
        }
    return keys


def test_every_manifest_in_the_folder_is_listed_and_parses() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == on_disk
    for document in DOCUMENTS:
        assert {"apiVersion", "kind", "metadata"} <= document.keys(), document
    assert (ROOT / ".gitignore").read_text().count("deploy/k8s/secrets.env") == 1


@pytest.mark.parametrize(
    "document",
    [d for d in DOCUMENTS if d["apiVersion"] != "keda.sh/v1alpha1"],
    ids=lambda d: f"{d['kind']}/{d['metadata']['name']}",
)
def test_each_manifest_follows_the_kubernetes_schema(document: dict[str, Any]) -> None:
    """Against the OpenAPI schema of the Kubernetes release kubernetes-validate ships (strict:
    a field Kubernetes does not know is an error). KEDA's ScaledObject is checked below."""
    kubernetes_validate.validate(document, kubernetes_validate.utils.latest_version(), strict=True)


def test_every_process_runs_a_console_script_of_this_project() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    workloads = _workloads()
    assert set(workloads) == set(SETTINGS)
    for name, workload in workloads.items():
        (container,) = workload["spec"]["template"]["spec"]["containers"]
        assert container["image"] == "relai", name
        assert container["command"][0] in scripts, name


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_each_process_gets_only_settings_it_knows(name: str) -> None:
    (container,) = _workloads()[name]["spec"]["template"]["spec"]["containers"]
    names = _env_names(container)
    assert names >= SERVERS, name
    fields = {f"RELAI_{field.upper()}" for field in SETTINGS[name].model_fields} | BOOTSTRAP_VARS
    unknown = {n for n in names if n.startswith("RELAI_")} - fields
    assert not unknown, (name, unknown)
    assert names - fields <= SERVERS | STANDARD, name


def test_services_follow_their_central_config() -> None:
    for name in ("relai-api", "relai-worker", "relai-recon"):
        (container,) = _named("Deployment")[name]["spec"]["template"]["spec"]["containers"]
        path = {e["name"]: e.get("value") for e in container["env"]}["RELAI_CONFIG_FILE"]
        component = name.removeprefix("relai-")
        assert path == f"/app/config/{component}.bootstrap.yaml"
        assert (ROOT / "config" / f"{component}.bootstrap.yaml").is_file()
    (dispatcher,) = _named("Deployment")["relai-dispatcher"]["spec"]["template"]["spec"][
        "containers"
    ]
    assert "RELAI_CONFIG_FILE" not in {e["name"] for e in dispatcher["env"]}  # it has none


def test_probes_and_services_reach_the_ports_the_processes_listen_on() -> None:
    deployments = _named("Deployment")
    api = deployments["relai-api"]["spec"]["template"]["spec"]["containers"][0]
    assert api["command"][api["command"].index("--port") + 1] == "8000"
    recon = deployments["relai-recon"]["spec"]["template"]["spec"]["containers"][0]
    recon_env = {e["name"]: e.get("value") for e in recon["env"]}
    dispatcher = deployments["relai-dispatcher"]["spec"]["template"]["spec"]["containers"][0]
    dispatcher_env = {e["name"]: e.get("value") for e in dispatcher["env"]}
    assert dispatcher_env["RELAI_DISPATCHER_HOST"] == "0.0.0.0"  # reachable by probes, scrapes
    ports = {
        "relai-api": {
            "http": 8000,
            "metrics": ApiSettings.model_fields["api_metrics_port"].default,
        },
        "relai-recon": {"http": int(recon_env["RELAI_RECON_PORT"])},
        "relai-worker": {"metrics": WorkerSettings.model_fields["worker_metrics_port"].default},
        "relai-dispatcher": {
            "http": int(dispatcher_env["RELAI_DISPATCHER_PORT"]),
            "metrics": DispatcherSettings.model_fields["dispatcher_metrics_port"].default,
        },
    }
    for name, expected in ports.items():
        (container,) = deployments[name]["spec"]["template"]["spec"]["containers"]
        declared = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert expected.items() <= declared.items(), name
        for probe in ("readinessProbe", "livenessProbe"):
            if probe in container:
                check = container[probe].get("httpGet") or container[probe]["tcpSocket"]
                assert check["port"] in declared, (name, probe)
                if "httpGet" in container[probe]:
                    assert check["path"] == "/health"
    for name, service in _named("Service").items():
        selector = service["spec"]["selector"]
        labels = deployments[name]["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= labels.items(), name


def test_keda_scales_the_workers_on_the_stream_they_read() -> None:
    (scaler,) = _named("ScaledObject").values()
    assert scaler["spec"]["scaleTargetRef"]["name"] == "relai-worker"
    assert scaler["spec"]["minReplicaCount"] >= 1  # parked jobs wait off the stream
    redis_host = _named("ConfigMap")["relai-env"]["data"]["REDIS_URL"].split("//")[1]
    for trigger in scaler["spec"]["triggers"]:
        meta = trigger["metadata"]
        assert trigger["type"] == "redis-streams"
        assert (meta["stream"], meta["consumerGroup"]) == (TASKS_STREAM, TASKS_GROUP)
        assert redis_host.startswith(meta["address"])
        assert redis_host.endswith(f"/{meta['databaseIndex']}")
    measures = {k for t in scaler["spec"]["triggers"] for k in t["metadata"]}
    assert {"lagCount", "pendingEntriesCount"} <= measures


def test_dispatchers_get_time_to_finish_their_attempts_and_share_the_work() -> None:
    deployment = _named("Deployment")["relai-dispatcher"]
    template = deployment["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in template["containers"][0]["env"]}
    timeout = float(env.get("RELAI_WEBHOOK_TIMEOUT_S", 10))
    assert template["terminationGracePeriodSeconds"] > timeout
    assert deployment["spec"]["replicas"] >= 2
    lease = DispatcherSettings.model_fields["webhook_lease_s"].default
    assert float(env.get("RELAI_WEBHOOK_LEASE_S", lease)) > timeout


def test_workers_get_time_to_drain_on_scale_down() -> None:
    worker = _named("Deployment")["relai-worker"]["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in worker["containers"][0]["env"]}
    assert worker["terminationGracePeriodSeconds"] > float(env["RELAI_WORKER_DRAIN_TIMEOUT_S"])
    assert "replicas" not in _named("Deployment")["relai-worker"]["spec"]  # KEDA sets them


def test_metrics_are_scraped_on_operator_ports_that_no_service_exposes() -> None:
    deployments = _named("Deployment")
    metrics_ports = {
        "relai-api": ApiSettings.model_fields["api_metrics_port"].default,
        "relai-worker": WorkerSettings.model_fields["worker_metrics_port"].default,
        "relai-recon": ReconSettings.model_fields["recon_metrics_port"].default,
        "relai-dispatcher": DispatcherSettings.model_fields["dispatcher_metrics_port"].default,
    }
    for name, port in metrics_ports.items():
        template = deployments[name]["spec"]["template"]
        annotations = template["metadata"]["annotations"]
        assert annotations["prometheus.io/port"] == str(port), name
        assert annotations["prometheus.io/path"] == "/metrics", name
        (container,) = template["spec"]["containers"]
        declared = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert declared["metrics"] == port, name
        env = {e["name"]: e.get("value") for e in container.get("env", [])}
        variable = f"RELAI_{name.removeprefix('relai-').upper()}_METRICS_PORT"
        assert env.get(variable, str(port)) == str(port), name
    for name, service in _named("Service").items():
        exposed = {p.get("targetPort") for p in service["spec"]["ports"]}
        assert "metrics" not in exposed, name
        assert not {p["port"] for p in service["spec"]["ports"]} & set(metrics_ports.values())
