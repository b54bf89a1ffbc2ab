"""docker-compose.yml and deploy/Dockerfile, checked without a Docker engine: against the
Compose Specification's JSON Schema, and against the project they run."""

import json
import shlex
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
# The Compose Specification's schema as check-jsonschema vendors it (a dev dependency; the schema
# is Apache-2.0, its licence beside it in the package's vendor/licenses/).
SCHEMA = resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
RELAI_SERVICES = ("migrate", "api", "worker", "recon", "dispatcher")
OBSERVABILITY_SERVICES = ("jaeger", "prometheus", "grafana")


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
    assert set(services) == {"postgres", "redis", *RELAI_SERVICES, *OBSERVABILITY_SERVICES}
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
    for name in RELAI_SERVICES:
        environment = services[name]["environment"]
        assert environment["DATABASE_URL"].startswith("postgresql://"), name
        assert "@postgres:5432/" in environment["DATABASE_URL"], name
        assert environment["REDIS_URL"].startswith("redis://redis:6379/"), name


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
    for name in ("postgres", "redis", "api", "recon", "dispatcher"):
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
