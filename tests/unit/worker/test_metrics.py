"""The worker's metrics server: off at port 0, and a taken port never stops the worker."""

import socket
import urllib.request

from services.worker.metrics import start_metrics_server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_port_zero_disables_the_server() -> None:
    assert start_metrics_server(0) is None


def test_serves_metrics_and_a_taken_port_only_warns() -> None:
    port = _free_port()
    server = start_metrics_server(port, addr="127.0.0.1")
    assert server is not None
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            assert b"relai_jobs_in_flight" in r.read()
        assert start_metrics_server(port, addr="127.0.0.1") is None
    finally:
        server.shutdown()
        server.server_close()
