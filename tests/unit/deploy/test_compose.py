"""docker-compose.yml and deploy/Dockerfile, checked without a Docker engine: against the
Compose Specification's JSON Schema, and against the project they run."""

import configparser
import json
import re
import shlex
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from libs.streams import parse_sentinel_url

ROOT = Path(__file__).resolve().parents[3]
# The Compose Specification's schema as check-jsonschema vendors it (a dev dependency; the schema
# is Apache-2.0, its licence beside it in the package's vendor/licenses/).
SCHEMA = resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
RELAI_SERVICES = ("migrate", "api", "worker", "recon", "dispatcher")
OBSERVABILITY_SERVICES = (
    "prometheus",
    "alertmanager",
    "grafana",
    "otel-collector",
    "tempo-init",
    "tempo",
    "loki",
    "alloy",
)
STORAGE_SERVICES = ("minio", "minio-init")
SCALE_SERVICES = ("pgbouncer", "redis-replica", "redis-sentinel")
"""Past one machine: PgBouncer in front of Postgres, Redis with a replica and its sentinels."""
FILE_SERVICES = ("api", "worker", "recon")
"""The processes that read or write files' bytes (the API serves and stores uploads, workers
read inputs and store results, recon collects)."""
BLOB_ENV = (
    "RELAI_BLOB_URL",
    "AWS_ENDPOINT_URL",
    "AWS_REGION",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_ALLOW_HTTP",
)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return document


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose["services"]
    return found


@pytest.fixture(scope="module")
def console_scripts() -> dict[str, str]:
    scripts: dict[str, str] = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "scripts"
    ]
    return scripts


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    logical, pending = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        logical.append(pending + stripped)
        pending = ""
    pairs = []
    for entry in logical:
        instruction, _, arguments = entry.partition(" ")
        pairs.append((instruction.upper(), arguments.strip()))
    return pairs


def _schema_errors(document: dict[str, Any]) -> list[str]:
    schema = json.loads(SCHEMA.read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    return [
        f"{'/'.join(str(part) for part in error.absolute_path) or '(root)'}: {error.message}"
        for error in validator.iter_errors(document)
    ]


def test_compose_file_follows_the_compose_spec(compose: dict[str, Any]) -> None:
    assert _schema_errors(compose) == []


def test_the_schema_rejects_what_compose_would() -> None:
    broken = {"services": {"api": {"image": "relai", "restart": "always", "comand": ["relai"]}}}
    assert _schema_errors(broken) != []


def test_the_stack_has_its_services(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) == {
        "postgres",
        "redis",
        *SCALE_SERVICES,
        *RELAI_SERVICES,
        *OBSERVABILITY_SERVICES,
        *STORAGE_SERVICES,
    }
    assert services["postgres"]["image"] == "postgres:16"
    assert services["redis"]["image"] == "redis:7"
    for name in RELAI_SERVICES:
        assert services[name]["build"]["dockerfile"] == "deploy/Dockerfile"
        assert (ROOT / services[name]["build"]["context"] / "deploy" / "Dockerfile").is_file()


def test_processes_run_the_declared_console_scripts(
    services: dict[str, dict[str, Any]], console_scripts: dict[str, str]
) -> None:
    for name in ("api", "worker", "recon", "dispatcher"):
        program = services[name]["command"][0]
        assert program == f"relai-{name}"
        assert program in console_scripts
    migrate = services["migrate"]["command"]
    assert migrate[:2] == ["sh", "-c"]
    steps = [shlex.split(step) for step in migrate[2].split("&&")]
    assert steps == [["relai", "migrate"], ["relai", "catalog", "apply", "/app/catalog/demo.yaml"]]
    assert "relai" in console_scripts
    assert (ROOT / "catalog" / "demo.yaml").is_file()


def test_every_relai_service_knows_both_servers(services: dict[str, dict[str, Any]]) -> None:
    """Pools through PgBouncer, sessions directly to Postgres, Redis through the sentinels."""
    for name in RELAI_SERVICES:
        environment = services[name]["environment"]
        assert environment["DATABASE_URL"].startswith("postgresql://"), name
        assert "@pgbouncer:6432/relai" in environment["DATABASE_URL"], name
        assert "@postgres:5432/relai" in environment["DATABASE_DIRECT_URL"], name
        sentinel = parse_sentinel_url(environment["REDIS_URL"])
        assert sentinel is not None, name
        assert sentinel.sentinels == (("redis-sentinel", 26379),)
        assert sentinel.service_name == "relai"


def test_pgbouncer_pools_transactions_for_the_database_relai_uses(
    services: dict[str, dict[str, Any]],
) -> None:
    pgbouncer = services["pgbouncer"]
    command = pgbouncer["command"]
    assert command[0] == "pgbouncer"
    mounted = {volume.split(":")[1]: ROOT / volume.split(":")[0] for volume in pgbouncer["volumes"]}
    ini_path = Path(command[1])
    assert ini_path.parent.as_posix() in mounted
    ini = configparser.ConfigParser()
    ini.read_string((mounted[ini_path.parent.as_posix()] / ini_path.name).read_text())
    bouncer = ini["pgbouncer"]
    assert bouncer["pool_mode"] == "transaction"
    assert bouncer["listen_port"] == "6432"
    assert bouncer["auth_type"] == "scram-sha-256"
    auth_file = Path(bouncer["auth_file"])
    users = (mounted[auth_file.parent.as_posix()] / auth_file.name).read_text()
    assert users.split()[0] == '"relai"'
    target = dict(word.split("=", 1) for word in ini["databases"]["relai"].split())
    assert target == {"host": "postgres", "port": "5432", "dbname": "relai"}
    healthy = services["migrate"]["depends_on"]
    assert healthy == {"postgres": {"condition": "service_healthy"}}  # migrates directly
    for name in ("api", "worker", "recon", "dispatcher"):
        depends = services[name]["depends_on"]
        for server in ("pgbouncer", "redis-sentinel"):
            assert depends[server]["condition"] == "service_healthy", name
    assert ["RUN", "pgbouncer"] in [
        [instruction, word]
        for instruction, arguments in dockerfile_instructions()
        for word in arguments.split()
        if instruction == "RUN"
    ]


def test_sentinels_watch_the_primary_with_a_quorum_of_their_replicas(
    services: dict[str, dict[str, Any]],
) -> None:
    sentinel = services["redis-sentinel"]
    config = sentinel["command"][0]
    assert "sentinel monitor relai redis 6379 2" in config
    assert sentinel["deploy"]["replicas"] == 3
    assert "exec redis-sentinel /tmp/sentinel.conf" in config
    replica = services["redis-replica"]["command"]
    assert replica[replica.index("--replicaof") + 1 :] == ["redis", "6379"]


def test_workers_and_dispatchers_scale(services: dict[str, dict[str, Any]]) -> None:
    for name in ("worker", "dispatcher"):
        assert "container_name" not in services[name], name
        assert "ports" not in services[name], name


def test_start_order_and_health(services: dict[str, dict[str, Any]]) -> None:
    for name in ("api", "worker", "recon", "dispatcher"):
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully", name
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["migrate"]["restart"] == "no"
    for name in ("postgres", "redis", "api", "recon", "dispatcher", *SCALE_SERVICES):
        assert services[name]["healthcheck"]["test"][0] == "CMD", name
    assert services["api"]["ports"] == ["8000:8000"]
    assert services["recon"]["ports"] == ["8001:8001"]
    assert services["recon"]["environment"]["RELAI_RECON_HOST"] == "0.0.0.0"
    dispatcher = services["dispatcher"]
    port = dispatcher["environment"]["RELAI_DISPATCHER_PORT"]
    assert f"127.0.0.1:{port}/health" in dispatcher["healthcheck"]["test"][-1]
    assert dispatcher["environment"]["RELAI_DISPATCHER_HOST"] == "0.0.0.0"


def test_dockerfile_builds_one_image_from_files_that_exist(
    console_scripts: dict[str, str],
) -> None:
    instructions = dockerfile_instructions()
    assert instructions[0] == ("FROM", "python:3.11-slim")
    runs = [arguments for instruction, arguments in instructions if instruction == "RUN"]
    assert "uv sync --frozen --no-dev" in runs
    ignored = {
        line.strip()
        for line in (ROOT / "deploy" / "Dockerfile.dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    copies = [arguments.split() for instruction, arguments in instructions if instruction == "COPY"]
    assert copies
    for words in copies:
        sources = [word for word in words[:-1] if not word.startswith("--")]
        assert sources, words
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: no such file in the repository"
            assert Path(source).parts[0] not in ignored, f"COPY {source} is in .dockerignore"
    command = json.loads(dict(instructions)["CMD"])
    assert command[0] in console_scripts


def test_each_service_follows_its_central_config(services: dict[str, dict[str, Any]]) -> None:
    copied = [
        args.split() for instruction, args in dockerfile_instructions() if instruction == "COPY"
    ]
    assert ["config", "./config"] in copied
    for name in ("api", "worker", "recon"):
        environment = services[name]["environment"]
        path = Path(environment["RELAI_CONFIG_FILE"])
        assert path == Path("/app/config") / f"{name}.bootstrap.yaml", name
        assert (ROOT / "config" / path.name).is_file(), name
        assert environment["RELAI_CONFIG_KEY"] == "${RELAI_CONFIG_KEY:-}", name


def _default(value: str) -> str:
    """The value of ``${NAME:-default}`` when NAME is unset (as ``docker compose up`` runs)."""
    match = re.fullmatch(r"\$\{[A-Z_]+:-(.*)\}", value)
    return match.group(1) if match else value


def test_every_process_that_handles_files_shares_one_s3_bucket(
    services: dict[str, dict[str, Any]],
) -> None:
    stores = {
        name: {key: services[name]["environment"][key] for key in BLOB_ENV}
        for name in FILE_SERVICES
    }
    first = stores[FILE_SERVICES[0]]
    assert all(store == first for store in stores.values()), stores
    assert first["RELAI_BLOB_URL"].startswith("s3://")
    bucket = first["RELAI_BLOB_URL"].removeprefix("s3://").split("/")[0]
    assert first["AWS_ENDPOINT_URL"] == "http://minio:9000"
    assert first["AWS_ALLOW_HTTP"] == "true"  # MinIO here speaks plain HTTP
    for name in FILE_SERVICES:
        depends = services[name]["depends_on"]
        assert depends["minio-init"]["condition"] == "service_completed_successfully", name
    for name in set(RELAI_SERVICES) - set(FILE_SERVICES):  # no keys they have no use for
        assert not set(BLOB_ENV) & set(services[name]["environment"]), name

    minio, init = services["minio"], services["minio-init"]
    assert minio["image"].startswith("minio/minio:")
    assert init["image"].startswith("minio/mc:")
    assert init["depends_on"]["minio"]["condition"] == "service_healthy"
    assert init["restart"] == "no"
    script = " ".join(init["command"])
    assert f"mc mb --ignore-existing local/{bucket}" in script
    user = first["AWS_ACCESS_KEY_ID"]
    assert f"mc admin user add local {user} " in script
    assert _default(init["environment"]["RELAI_S3_SECRET"]) == _default(
        first["AWS_SECRET_ACCESS_KEY"]
    )
    assert user != minio["environment"]["MINIO_ROOT_USER"]  # Relai's own keys, not the root's
    assert any(v.endswith(":/data") for v in minio["volumes"])


def test_the_api_signs_file_urls_with_a_key_of_the_stack(
    services: dict[str, dict[str, Any]],
) -> None:
    key = services["api"]["environment"]["RELAI_FILE_URL_KEY"]
    assert key.startswith("${RELAI_FILE_URL_KEY:-")  # the operator's, when set
    assert len(_default(key)) >= 32
    for name in set(RELAI_SERVICES) - {"api"}:
        assert "RELAI_FILE_URL_KEY" not in services[name]["environment"], name
