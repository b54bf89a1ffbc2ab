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
SERVERS = {"DATABASE_URL", "DATABASE_DIRECT_URL", "REDIS_URL"}
S3 = {"AWS_ENDPOINT_URL", "AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
"""What an S3 blob store reads from the environment (``libs.blobs``), besides RELAI_BLOB_URL."""
STANDARD = {"OTEL_EXPORTER_OTLP_ENDPOINT", *S3, "AWS_ALLOW_HTTP"}
FILE_PROCESSES = ("relai-api", "relai-worker", "relai-recon")
"""The processes that read or write files' bytes."""
FILE_URL_KEY = "RELAI_FILE_URL_KEY"
"""The API's signed-URL key (its setting ``file_url_key``)."""
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
    """Relai's own processes (the image ``relai``)."""
    return {
        name: workload
        for name, workload in {**_named("Deployment"), **_named("Job")}.items()
        if workload["spec"]["template"]["spec"]["containers"][0]["image"] == "relai"
        and name != "pgbouncer"
    }


INFRASTRUCTURE = {
    "otel-collector": ROOT / "deploy" / "otel",
    "alertmanager": ROOT / "deploy" / "alertmanager",
}
"""What runs beside Relai's processes, by name, with the folder of the files its ConfigMap holds."""


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
    ignored = (ROOT / ".gitignore").read_text().splitlines()
    kustomization_secrets = kustomization["secretGenerator"]
    for generator in kustomization_secrets:
        for env_file in [*generator.get("envs", []), *generator.get("files", [])]:
            assert ignored.count(f"deploy/k8s/{env_file}") == 1, env_file
            assert (K8S / f"{env_file}.example").is_file(), env_file


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
    assert set(_named("Deployment")) - set(workloads) == {*INFRASTRUCTURE, "pgbouncer"}
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


def _env_sources(container: dict[str, Any]) -> dict[str, str]:
    """Where each variable comes from: ``value:<v>``, ``configmap:<name>:<value>`` or
    ``secret:<name>:<key>``."""
    sources: dict[str, str] = {}
    config = _named("ConfigMap")
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            name = source["configMapRef"]["name"]
            sources |= {k: f"configmap:{name}:{v}" for k, v in config[name]["data"].items()}
        if "secretRef" in source:
            name = source["secretRef"]["name"]
            sources |= {k: f"secret:{name}:{k}" for k in _secret_keys(name)}
    for entry in container.get("env", []):
        if "value" in entry:
            sources[entry["name"]] = f"value:{entry['value']}"
        elif "secretKeyRef" in entry.get("valueFrom", {}):
            ref = entry["valueFrom"]["secretKeyRef"]
            assert ref["key"] in _secret_keys(ref["name"]), entry
            sources[entry["name"]] = f"secret:{ref['name']}:{ref['key']}"
    return sources


def test_every_process_that_handles_files_shares_one_s3_store() -> None:
    workloads = _workloads()
    found = {}
    for name in FILE_PROCESSES:
        (container,) = workloads[name]["spec"]["template"]["spec"]["containers"]
        sources = _env_sources(container)
        found[name] = {k: sources.get(k) for k in {"RELAI_BLOB_URL", *S3}}
    first = found[FILE_PROCESSES[0]]
    assert all(store == first for store in found.values()), found
    assert None not in first.values(), first
    assert first["RELAI_BLOB_URL"] == "configmap:relai-files:s3://relai-files"
    assert first["AWS_ACCESS_KEY_ID"] == "secret:relai-files:AWS_ACCESS_KEY_ID"
    assert first["AWS_SECRET_ACCESS_KEY"] == "secret:relai-files:AWS_SECRET_ACCESS_KEY"
    for name in set(SETTINGS) - set(FILE_PROCESSES):  # no keys they have no use for
        (container,) = workloads[name]["spec"]["template"]["spec"]["containers"]
        assert not (S3 | {"RELAI_BLOB_URL"}) & set(_env_sources(container)), name
    assert (ROOT / ".gitignore").read_text().count("deploy/k8s/files.env") == 1


def test_the_api_replicas_share_one_file_url_key_from_a_secret() -> None:
    workloads = _workloads()
    for name in SETTINGS:
        (container,) = workloads[name]["spec"]["template"]["spec"]["containers"]
        source = _env_sources(container).get(FILE_URL_KEY)
        if name == "relai-api":
            assert source == f"secret:relai-files:{FILE_URL_KEY}"
        else:
            assert source is None, name
    assert _named("Deployment")["relai-api"]["spec"]["replicas"] >= 2


def test_the_collector_and_alertmanager_run_the_files_compose_runs() -> None:
    """Their ConfigMaps hold deploy/otel's and deploy/alertmanager's files as they are, mounted
    where each program reads them."""
    configs = _named("ConfigMap")
    collector = configs["otel-collector"]["data"]
    assert collector == {"config.yaml": (ROOT / "deploy" / "otel" / "collector.yaml").read_text()}
    alertmanager = configs["alertmanager"]["data"]
    assert alertmanager == {
        name: (INFRASTRUCTURE["alertmanager"] / name).read_text()
        for name in ("alertmanager.yml", "start.sh")
    }
    deployments = _named("Deployment")
    for name in INFRASTRUCTURE:
        spec = deployments[name]["spec"]["template"]["spec"]
        (volume,) = [v for v in spec["volumes"] if "configMap" in v]
        assert volume["configMap"]["name"] == name
        (container,) = spec["containers"]
        (mount,) = [m for m in container["volumeMounts"] if m["name"] == volume["name"]]
        argv = [*container.get("command", []), *container.get("args", [])]
        assert any(mount["mountPath"] in arg for arg in argv), (name, argv)
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    for name in INFRASTRUCTURE:
        (container,) = deployments[name]["spec"]["template"]["spec"]["containers"]
        assert container["image"] == compose[name]["image"], name


def test_traces_go_to_the_collector_service_and_alerts_to_alertmanager() -> None:
    services = _named("Service")
    config = _named("ConfigMap")["relai-env"]["data"]
    endpoint = config["OTEL_EXPORTER_OTLP_ENDPOINT"].removeprefix("http://")
    host, port = endpoint.split(":")
    assert {p["name"]: p["port"] for p in services[host]["spec"]["ports"]}["otlp-http"] == int(port)
    (recon,) = _named("Deployment")["relai-recon"]["spec"]["template"]["spec"]["containers"]
    url = {e["name"]: e.get("value") for e in recon["env"]}["RELAI_RECON_ALERTMANAGER_URL"]
    host, port = url.removeprefix("http://").split(":")
    assert [p["port"] for p in services[host]["spec"]["ports"]] == [int(port)]
    (alertmanager,) = _named("Deployment")["alertmanager"]["spec"]["template"]["spec"]["containers"]
    (webhook,) = alertmanager["env"]
    ref = webhook["valueFrom"]["secretKeyRef"]
    assert webhook["name"] == ref["key"] == "RELAI_ALERT_WEBHOOK_URL"
    assert ref["key"] in _secret_keys(ref["name"])


def test_pgbouncer_pools_transactions_in_front_of_postgres_from_relais_image() -> None:
    """The ConfigMap holds deploy/pgbouncer/pgbouncer.ini as it is (compose's), mounted with the
    users' Secret where the command reads it; the pools go through its Service, sessions not."""
    import configparser

    ini_text = _named("ConfigMap")["pgbouncer"]["data"]["pgbouncer.ini"]
    assert ini_text == (ROOT / "deploy" / "pgbouncer" / "pgbouncer.ini").read_text()
    ini = configparser.ConfigParser()
    ini.read_string(ini_text)
    assert ini["pgbouncer"]["pool_mode"] == "transaction"
    port = int(ini["pgbouncer"]["listen_port"])
    deployment = _named("Deployment")["pgbouncer"]["spec"]["template"]["spec"]
    (container,) = deployment["containers"]
    assert container["image"] == "relai"
    assert container["command"][0] == "pgbouncer"
    (mount,) = container["volumeMounts"]
    assert container["command"][1] == f"{mount['mountPath']}/pgbouncer.ini"
    assert ini["pgbouncer"]["auth_file"] == f"{mount['mountPath']}/userlist.txt"
    assert container["readinessProbe"]["tcpSocket"]["port"] == port
    (volume,) = deployment["volumes"]
    sources = volume["projected"]["sources"]
    assert sources[0]["configMap"]["name"] == "pgbouncer"
    assert sources[1]["secret"]["items"] == [
        {"key": "pgbouncer-userlist.txt", "path": "userlist.txt"}
    ]
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    (users,) = [g for g in kustomization["secretGenerator"] if g["name"] == "relai-pgbouncer"]
    assert users["files"] == ["pgbouncer-userlist.txt"]
    assert (K8S / "pgbouncer-userlist.txt.example").is_file()
    service = _named("Service")["pgbouncer"]["spec"]
    assert service["ports"][0]["port"] == port
    example = dict(
        line.split("=", 1)
        for line in (K8S / "secrets.env.example").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert f"@pgbouncer:{port}/" in example["DATABASE_URL"]
    assert "@postgres:5432/" in example["DATABASE_DIRECT_URL"]
