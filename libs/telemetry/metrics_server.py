"""The Prometheus metrics server of a process that serves no HTTP of its own for them (the worker,
recon): ``/metrics`` of ``prometheus_client``'s default registry, from a daemon thread, on its own
port. The API serves its metrics on its own routes instead (``services.api.metrics``)."""

from collections.abc import Iterator
from contextlib import contextmanager
from wsgiref.simple_server import WSGIServer

from prometheus_client import start_http_server

from libs.logs import get_logger

log = get_logger(__name__)


def start_metrics_server(port: int, addr: str = "0.0.0.0", *, service: str) -> WSGIServer | None:
    """Serve ``/metrics`` from a daemon thread on ``port``; ``0`` disables it (returns None).

    A port already taken (several processes on one host, all on the default) costs the metrics
    only, with a warning (``{service}.metrics_unavailable``): the process runs regardless.
    """
    if not port:
        return None
    try:
        server, _thread = start_http_server(port, addr=addr)
    except OSError as exc:
        log.warning(f"{service}.metrics_unavailable", port=port, error=repr(exc))
        return None
    log.info(f"{service}.metrics_serving", port=port)
    return server


@contextmanager
def serving_metrics(
    port: int, addr: str = "0.0.0.0", *, service: str
) -> Iterator[WSGIServer | None]:
    """``start_metrics_server`` for the time of a ``with`` block; the server stops at its end."""
    server = start_metrics_server(port, addr, service=service)
    try:
        yield server
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()
