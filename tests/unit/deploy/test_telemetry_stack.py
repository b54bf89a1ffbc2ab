"""Traces and logs in compose and Kubernetes, checked without running them: the OpenTelemetry
collector's pipelines, Tempo, Loki, the Alloy agent's components, Grafana's data sources and the
dashboards' Loki and Tempo queries, against one another and against what the code logs and
traces."""

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from tests.dashboards import panel_queries

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"
COLLECTOR = DEPLOY / "otel" / "collector.yaml"
TEMPO = DEPLOY / "tempo" / "tempo.yaml"
LOKI = DEPLOY / "loki" / "loki.yaml"
ALLOY = DEPLOY / "alloy" / "config.alloy"
DATASOURCES = DEPLOY / "grafana" / "provisioning" / "datasources" / "datasources.yml"
RELAI = ("api", "worker", "recon", "dispatcher")
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


def _yaml(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(path.read_text())
    return document


@pytest.fixture(scope="module")
def services() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = _yaml(ROOT / "docker-compose.yml")["services"]
    return found


@pytest.fixture(scope="module")
def datasources() -> dict[str, dict[str, Any]]:
    return {d["uid"]: d for d in _yaml(DATASOURCES)["datasources"]}


def _port(url: str) -> tuple[str, int]:
    parts = urlsplit(url if "//" in url else f"//{url}")
    assert parts.hostname is not None, url
    assert parts.port is not None, url
    return parts.hostname, parts.port


def _endpoint_port(endpoint: str) -> int:
    return int(endpoint.rsplit(":", 1)[1])


# The collector


def test_the_collectors_pipelines_use_only_components_it_defines() -> None:
    config = _yaml(COLLECTOR)
    service = config["service"]
    assert set(service["extensions"]) <= set(config["extensions"])
    used: dict[str, set[str]] = {"receivers": set(), "processors": set(), "exporters": set()}
    for name, pipeline in service["pipelines"].items():
        assert name.split("/")[0] in {"traces", "metrics", "logs"}, name
        for kind in used:
            assert pipeline[kind] or kind == "processors", (name, kind)
            assert set(pipeline[kind]) <= set(config[kind]), (name, kind)
            used[kind] |= set(pipeline[kind])
    for kind, names in used.items():
        assert names == set(config[kind]), f"{kind} defined and never used"
    assert service["pipelines"]["traces"]["processors"][0] == "memory_limiter"  # first, as advised


def test_every_process_sends_its_traces_to_the_collector_and_the_collector_to_tempo(
    services: dict[str, dict[str, Any]],
) -> None:
    config = _yaml(COLLECTOR)
    otlp = config["receivers"]["otlp"]["protocols"]
    for name in ("migrate", *RELAI):
        endpoint = services[name]["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"]
        host, port = _port(endpoint)
        assert host == "otel-collector", name
        assert port == _endpoint_port(otlp["http"]["endpoint"]), name  # OTLP/HTTP, as exported
        assert otlp["http"]["endpoint"].startswith("0.0.0.0:")  # not the default localhost
    assert "jaeger" not in services
    collector = services["otel-collector"]
    mounted = {v.split(":")[1]: v.split(":")[0] for v in collector["volumes"]}
    (flag,) = collector["command"]
    assert mounted[flag.removeprefix("--config=")] == "./deploy/otel/collector.yaml"

    (exporter,) = config["service"]["pipelines"]["traces"]["exporters"]
    host, port = _port(config["exporters"][exporter]["endpoint"])
    assert host == "tempo"
    assert host in services
    tempo = _yaml(TEMPO)
    grpc = tempo["distributor"]["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"]
    assert port == _endpoint_port(grpc)


def test_tempo_and_loki_keep_their_data_in_their_volumes_and_answer_grafana(
    services: dict[str, dict[str, Any]], datasources: dict[str, dict[str, Any]]
) -> None:
    tempo, loki = _yaml(TEMPO), _yaml(LOKI)
    assert _port(datasources["tempo"]["url"]) == ("tempo", tempo["server"]["http_listen_port"])
    assert _port(datasources["loki"]["url"]) == ("loki", loki["server"]["http_listen_port"])
    tempo_volume = dict(v.split(":")[::-1][:2][::-1] for v in services["tempo"]["volumes"])
    assert tempo_volume["tempo-data"] == "/var/tempo"
    trace = tempo["storage"]["trace"]
    assert trace["wal"]["path"].startswith("/var/tempo/")
    assert trace["local"]["path"].startswith("/var/tempo/")
    init = services["tempo-init"]
    assert init["entrypoint"][:2] == ["chown", "10001:10001"]
    assert services["tempo"]["depends_on"]["tempo-init"]["condition"] == (
        "service_completed_successfully"
    )
    assert "loki-data:/loki" in services["loki"]["volumes"]
    assert loki["common"]["path_prefix"] == "/loki"
    assert loki["limits_config"]["allow_structured_metadata"] is True
    (schema,) = loki["schema_config"]["configs"]
    assert (schema["store"], schema["schema"]) == ("tsdb", "v13")  # structured metadata needs it


# Alloy


Block = tuple[str, str, str]
"""(component, label, body) of a top-level block of an Alloy config."""


def _alloy_blocks(text: str) -> list[Block]:
    text = re.sub(r"^\s*//[^\n]*", "", text, flags=re.M)  # comments, each on a line of its own
    blocks = []
    for match in re.finditer(r'^([a-z_]+(?:\.[a-z_]+)+)\s+"([^"]+)"\s*\{', text, re.M):
        depth, at = 1, match.end()
        while depth:
            depth += {"{": 1, "}": -1}.get(text[at], 0)
            at += 1
        blocks.append((match.group(1), match.group(2), text[match.end() : at - 1]))
    return blocks


def _attribute(body: str, name: str) -> str:
    (value,) = re.findall(rf'^\s*{name}\s*=\s*"([^"]*)"', body, re.M)
    return str(value)


def _map_keys(body: str, block: str) -> dict[str, str]:
    """The ``key = "value"`` pairs of ``block { values|expressions = { ... } }`` in ``body``."""
    match = re.search(rf"{re.escape(block)}\s*\{{\s*\w+\s*=\s*\{{([^}}]*)\}}", body)
    assert match, block
    return dict(re.findall(r'(\w+)\s*=\s*"([^"]*)"', match.group(1)))


@pytest.fixture(scope="module")
def alloy() -> dict[str, str]:
    blocks = _alloy_blocks(ALLOY.read_text())
    named = {f"{component}.{label}": body for component, label, body in blocks}
    assert len(named) == len(blocks), "a component defined twice"
    return named


def test_alloy_references_only_components_it_defines(alloy: dict[str, str]) -> None:
    assert {name.rsplit(".", 1)[0] for name in alloy} == {
        "discovery.docker",
        "discovery.relabel",
        "loki.source.docker",
        "loki.process",
        "loki.write",
    }
    for name, body in alloy.items():
        for ref in re.findall(r"\b((?:discovery|loki)\.[a-z_]+\.[a-z_]+)\.[a-z_]+\b", body):
            assert ref in alloy, (name, ref)
    source = alloy["loki.source.docker.containers"]
    assert re.search(r"targets\s*=\s*discovery\.docker\.containers\.targets", source)
    assert re.search(r"relabel_rules\s*=\s*discovery\.relabel\.containers\.rules", source)
    assert re.search(r"forward_to\s*=\s*\[loki\.process\.relai\.receiver\]", source)
    assert re.search(
        r"forward_to\s*=\s*\[loki\.write\.loki\.receiver\]", alloy["loki.process.relai"]
    )


def test_alloy_reads_the_projects_containers_and_pushes_to_loki(
    alloy: dict[str, str], services: dict[str, dict[str, Any]]
) -> None:
    compose = _yaml(ROOT / "docker-compose.yml")
    socket = "/var/run/docker.sock"
    for name in ("discovery.docker.containers", "loki.source.docker.containers"):
        assert _attribute(alloy[name], "host") == f"unix://{socket}"
    assert f"{socket}:{socket}:ro" in services["alloy"]["volumes"]
    assert f'"com.docker.compose.project={compose["name"]}"' in alloy["discovery.docker.containers"]
    mounted = {v.split(":")[1]: v.split(":")[0] for v in services["alloy"]["volumes"]}
    assert mounted[services["alloy"]["command"][-1]] == "./deploy/alloy/config.alloy"

    url = _attribute(alloy["loki.write.loki"], "url")
    host, port = _port(url)
    assert (host, port) == ("loki", _yaml(LOKI)["server"]["http_listen_port"])
    assert urlsplit(url).path == "/loki/api/v1/push"


LOGGED = """
from libs.logs import bind_request, configure_logging, get_logger

configure_logging(service="api", level="INFO", json=True)
with bind_request("018f3c1e-0000-7000-8000-000000000001", "00-%s-00f067aa0ba902b7-01"):
    get_logger("relai").info("request.accepted")
"""


def _log_line() -> dict[str, Any]:
    """One line a Relai process logs about a request, as it writes it (in a process of its
    own: logging is configured once per process)."""
    done = subprocess.run(
        [sys.executable, "-c", LOGGED % TRACE_ID],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    line: dict[str, Any] = json.loads(done.stderr.splitlines()[-1])
    return line


def test_alloy_keeps_the_ids_every_log_line_carries_as_structured_metadata(
    alloy: dict[str, str],
) -> None:
    process = alloy["loki.process.relai"]
    extracted = _map_keys(process, "stage.json")
    kept = _map_keys(process, "stage.structured_metadata")
    labels = _map_keys(process, "stage.labels")
    assert set(kept) == {"request_id", "trace_id"}
    assert set(labels) == {"level"}  # bounded: never an id as a label
    line = _log_line()
    for name in (*kept, *labels):
        assert extracted[name] in line, name  # a field the services' JSON lines carry
    assert line["request_id"] == "018f3c1e-0000-7000-8000-000000000001"
    assert line["trace_id"] == TRACE_ID


def _stream_labels(alloy: dict[str, str]) -> set[str]:
    relabel = alloy["discovery.relabel.containers"]
    return set(re.findall(r'target_label\s*=\s*"(\w+)"', relabel)) | set(
        _map_keys(alloy["loki.process.relai"], "stage.labels")
    )


def test_the_dashboards_loki_queries_select_what_alloy_ships(alloy: dict[str, str]) -> None:
    queries = [q for q in panel_queries() if q.datasource == "loki"]
    assert queries
    kept = set(_map_keys(alloy["loki.process.relai"], "stage.structured_metadata"))
    for query in queries:
        selector, _, pipeline = query.text.partition("}")
        matchers = re.findall(r'(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"', selector)
        assert matchers, query.panel
        assert {name for name, _, _ in matchers} <= _stream_labels(alloy)
        assert ("service", "=~", "|".join(RELAI)) in matchers  # every Relai process, no other
        filters = re.findall(r'\|\s*(\w+)\s*(?:=|!=)\s*"[^"]*"', pipeline)
        assert filters, query.panel
        assert set(filters) <= kept, query.panel
    (logs,) = queries
    assert '| request_id="$request_id"' in logs.text


def test_the_dashboards_tempo_queries_read_an_attribute_the_code_sets() -> None:
    queries = [q for q in panel_queries() if q.datasource == "tempo"]
    assert queries
    code = "\n".join(p.read_text() for p in (ROOT / "libs" / "telemetry").rglob("*.py"))
    code += "\n".join(p.read_text() for p in (ROOT / "services").rglob("*.py"))
    for query in queries:
        assert query.target["queryType"] == "traceql"
        for attribute in re.findall(r"span\.([\w.]+)", query.text):
            assert f'"{attribute}"' in code, attribute


def test_grafana_links_traces_to_logs_and_logs_to_traces(
    datasources: dict[str, dict[str, Any]], alloy: dict[str, str]
) -> None:
    kept = set(_map_keys(alloy["loki.process.relai"], "stage.structured_metadata"))
    to_logs = datasources["tempo"]["jsonData"]["tracesToLogsV2"]
    assert to_logs["datasourceUid"] == "loki"
    # `$$` is a literal `$` in a provisioning file (Grafana expands `$NAME` there).
    assert '| trace_id="$${__trace.traceId}"' in to_logs["query"]
    assert "trace_id" in kept
    (derived,) = datasources["loki"]["jsonData"]["derivedFields"]
    assert derived["datasourceUid"] == "tempo"
    assert (derived["matcherType"], derived["matcherRegex"]) == ("label", "trace_id")
    assert derived["url"] == "$${__value.raw}"
    for source in datasources.values():  # no other `$` that Grafana would expand
        text = json.dumps(source)
        assert not re.search(r"(?<!\$)\$(?!\$)\{?[A-Za-z_]", text.replace("$${", "")), source


def _iter_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _iter_panels(panel.get("panels", []))


def test_the_operations_dashboard_asks_for_the_request_its_logs_and_trace_show() -> None:
    operations = json.loads((DEPLOY / "grafana" / "dashboards" / "operations.json").read_text())
    (variable,) = [v for v in operations["templating"]["list"] if v["name"] == "request_id"]
    assert variable["type"] == "textbox"
    titles = {p["title"] for p in _iter_panels(operations["panels"])}
    assert {"Logs of request $request_id", "Trace of request $request_id"} <= titles
