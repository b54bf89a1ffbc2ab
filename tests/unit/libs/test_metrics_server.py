"""The metrics server of every process: ``/metrics`` only, off at port 0, a taken port never
stops the process, ``serving_metrics`` stops it at the end of its block, a token when one is
set, and with ``PROMETHEUS_MULTIPROC_DIR`` the sum over every process's files."""

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client import REGISTRY, generate_latest

from bench.stack import free_port
from libs.telemetry import bearer_matches, metrics_registry, serving_metrics, start_metrics_server
from services.worker.metrics import JOBS_IN_FLIGHT

SERVICE = "test"
TOKEN = "a-metrics-token-of-some-length"


def _scrape(port: int, path: str = "/metrics", headers: dict[str, str] | None = None) -> bytes:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers or {})
    with urllib.request.urlopen(request, timeout=5) as r:
        body: bytes = r.read()
    return body


def _refused(port: int, path: str = "/metrics", **headers: str) -> urllib.error.HTTPError:
    with pytest.raises(urllib.error.HTTPError) as refused:
        _scrape(port, path, headers)
    return refused.value


def test_port_zero_disables_the_server() -> None:
    assert start_metrics_server(0, service=SERVICE) is None
    with serving_metrics(0, service=SERVICE) as server:
        assert server is None


def test_serves_metrics_and_a_taken_port_only_warns() -> None:
    port = free_port()
    server = start_metrics_server(port, addr="127.0.0.1", service=SERVICE)
    assert server is not None
    try:
        JOBS_IN_FLIGHT.set(0)  # a metric of the default registry, which the server serves
        assert b"relai_jobs_in_flight" in _scrape(port)
        assert start_metrics_server(port, addr="127.0.0.1", service=SERVICE) is None
    finally:
        server.shutdown()
        server.server_close()


def test_serving_metrics_stops_the_server_at_the_end_of_its_block() -> None:
    port = free_port()
    with serving_metrics(port, "127.0.0.1", service=SERVICE) as server:
        assert server is not None
        assert b"relai_jobs_in_flight" in _scrape(port)
    with pytest.raises(urllib.error.URLError):
        _scrape(port)


def test_only_the_metrics_path_is_served() -> None:
    port = free_port()
    with serving_metrics(port, "127.0.0.1", service=SERVICE):
        for path in ("/", "/other", "/metrics/x", "/favicon.ico"):
            refused = _refused(port, path)
            assert refused.code == 404, path
            assert json.loads(refused.read()) == {"detail": "Not Found", "code": "not_found"}


def test_with_a_token_a_scrape_without_it_is_refused() -> None:
    port = free_port()
    with serving_metrics(port, "127.0.0.1", service=SERVICE, token=TOKEN):
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
            refused = _refused(port, **headers)
            assert refused.code == 401, headers
            assert refused.headers["WWW-Authenticate"] == "Bearer"
            body = refused.read()
            assert json.loads(body)["code"] == "unauthorized"
            assert b"relai_" not in body
        assert b"relai_jobs_in_flight" in _scrape(
            port, headers={"Authorization": f"Bearer {TOKEN}"}
        )


def test_bearer_matches_the_exact_header_only() -> None:
    assert bearer_matches(f"Bearer {TOKEN}", TOKEN)
    for header in (None, "", TOKEN, f"bearer {TOKEN}", f"Bearer {TOKEN} ", f"Bearer {TOKEN}x"):
        assert not bearer_matches(header, TOKEN), header
    assert not bearer_matches("Bearer caf\u00e9\u2603", TOKEN)  # not Latin-1: no error either


def test_one_process_serves_the_default_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    assert metrics_registry() is REGISTRY


def test_with_a_multiprocess_directory_the_files_of_every_process_add_up(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    for n in (2, 3):  # two processes, each writing its own file
        code = f"import prometheus_client as p; p.Counter('relai_test_added_up', 't').inc({n})"
        subprocess.run([sys.executable, "-c", code], check=True, env=dict(os.environ))
    assert b"relai_test_added_up_total 5.0" in generate_latest(metrics_registry())
