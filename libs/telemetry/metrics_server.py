"""The Prometheus metrics of a process, on an operator port apart from any public one: ``GET
/metrics`` (every other path is 404), from a daemon thread. The API serves the sum over all its
processes (``metrics_registry``); the worker and recon their own process's.

With a token (``RELAI_METRICS_TOKEN``) a scrape must carry ``Authorization: Bearer <token>``;
anything else is 401.
"""

from __future__ import annotations

import hmac
import os
import socket
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import orjson
from prometheus_client import REGISTRY, CollectorRegistry, make_wsgi_app, multiprocess
from prometheus_client.exposition import ThreadingWSGIServer
from prometheus_client.registry import Collector

from libs.logs import get_logger

log = get_logger(__name__)

METRICS_PATH = "/metrics"
_StartResponse = Callable[..., Any]
_WsgiApp = Callable[[dict[str, Any], _StartResponse], Iterable[bytes]]


def metrics_registry() -> Collector:
    """What a scrape returns: the default registry, or, when ``PROMETHEUS_MULTIPROC_DIR`` is set
    (``relai-api --workers N``), the sum over the files every process of the server writes."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return registry


def bearer_matches(authorization: str | None, token: str) -> bool:
    """Whether an ``Authorization`` header carries ``token`` (compared in constant time)."""
    given = (authorization or "").encode("latin-1", "replace")
    return hmac.compare_digest(given, f"Bearer {token}".encode())


def _json_error(start_response: _StartResponse, status: str, detail: str, code: str) -> list[bytes]:
    body = orjson.dumps({"detail": detail, "code": code})
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    if code == "unauthorized":
        headers.append(("WWW-Authenticate", "Bearer"))
    start_response(status, headers)
    return [body]


def metrics_app(registry: Collector, token: str | None) -> _WsgiApp:
    """The WSGI app of the operator port: ``/metrics`` only, behind ``token`` when given."""
    exposition: _WsgiApp = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: _StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != METRICS_PATH:
            return _json_error(start_response, "404 Not Found", "Not Found", "not_found")
        if token is not None and not bearer_matches(environ.get("HTTP_AUTHORIZATION"), token):
            detail = "a metrics token is required"
            return _json_error(start_response, "401 Unauthorized", detail, "unauthorized")
        return exposition(environ, start_response)

    return app


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes are not logged."""


def _server_class(addr: str, port: int) -> tuple[type[WSGIServer], str]:
    """A server class of the address family of ``addr`` (an IPv6 address needs its own)."""
    family, _, _, _, sockaddr = socket.getaddrinfo(
        addr, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]

    class Server(ThreadingWSGIServer):
        address_family = family

    return Server, str(sockaddr[0])


def start_metrics_server(
    port: int,
    addr: str = "0.0.0.0",
    *,
    service: str,
    registry: Collector = REGISTRY,
    token: str | None = None,
) -> WSGIServer | None:
    """Serve ``/metrics`` from a daemon thread on ``port``; ``0`` disables it (returns None).

    A port already taken (several processes on one host, all on the default) costs the metrics
    only, with a warning (``{service}.metrics_unavailable``): the process runs regardless.
    """
    if not port:
        return None
    try:
        server_class, host = _server_class(addr, port)
        server = make_server(
            host, port, metrics_app(registry, token), server_class, handler_class=_Quiet
        )
    except OSError as exc:
        log.warning(f"{service}.metrics_unavailable", port=port, error=repr(exc))
        return None
    threading.Thread(target=server.serve_forever, name=f"{service}-metrics", daemon=True).start()
    log.info(f"{service}.metrics_serving", port=port, with_token=token is not None)
    return server


@contextmanager
def serving_metrics(
    port: int,
    addr: str = "0.0.0.0",
    *,
    service: str,
    registry: Collector = REGISTRY,
    token: str | None = None,
) -> Iterator[WSGIServer | None]:
    """``start_metrics_server`` for the time of a ``with`` block; the server stops at its end."""
    server = start_metrics_server(port, addr, service=service, registry=registry, token=token)
    try:
        yield server
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()
