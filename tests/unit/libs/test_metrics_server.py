"""The metrics server of the worker and recon: off at port 0, a taken port never stops the
process, and ``serving_metrics`` stops it at the end of its block."""

import socket
import urllib.error
import urllib.request

import pytest

from libs.telemetry import serving_metrics, start_metrics_server
from services.worker.metrics import JOBS_IN_FLIGHT

SERVICE = "test"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _scrape(port: int) -> bytes:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        body: bytes = r.read()
    return body


def test_port_zero_disables_the_server() -> None:
    assert start_metrics_server(0, service=SERVICE) is None
    with serving_metrics(0, service=SERVICE) as server:
        assert server is None


def test_serves_metrics_and_a_taken_port_only_warns() -> None:
    port = _free_port()
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
    port = _free_port()
    with serving_metrics(port, "127.0.0.1", service=SERVICE) as server:
        assert server is not None
        assert b"relai_jobs_in_flight" in _scrape(port)
    with pytest.raises(urllib.error.URLError):
        _scrape(port)
