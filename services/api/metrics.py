"""The API's Prometheus metrics and the middleware that times every HTTP request.

Metrics live in ``prometheus_client``'s process-wide default registry, as that library intends.
``relai-api`` serves them on its operator port (``RELAI_API_METRICS_PORT``), never on the public
one, unless a token (``RELAI_METRICS_TOKEN``) is set: then ``GET /metrics`` answers there too, to
a scrape that sends it. With ``relai-api --workers N`` (N > 1) the processes share a directory
(``PROMETHEUS_MULTIPROC_DIR``, made by ``relai-api`` unless set) and a scrape adds up every
process's values (``prometheus_client`` multiprocess mode), whichever process answers it.
The API defines counters and histograms only: they add up across processes without a mode.

Labels stay bounded: the route *template* (``/svc/{service_name}/{action}``), never the raw path,
and never a request or user id.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from libs.telemetry import bearer_matches, hop, metrics_registry
from services.api.errors import CLIENT_CLOSED_REQUEST, Unauthorized

HTTP_REQUESTS = Counter(
    "relai_http_requests_total",
    "HTTP requests answered, by method, route template and status.",
    ["method", "route", "status"],
)
HTTP_DURATION = Histogram(
    "relai_http_request_duration_seconds",
    "Time to answer an HTTP request, by method and route template.",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
SUBMISSIONS = Counter(
    "relai_submissions_total",
    "Submissions decided, by outcome (accepted, duplicate, refused_credits).",
    ["outcome"],
)
SUBMISSION_ACCEPTED = SUBMISSIONS.labels(outcome="accepted")
SUBMISSION_DUPLICATE = SUBMISSIONS.labels(outcome="duplicate")
SUBMISSION_REFUSED_CREDITS = SUBMISSIONS.labels(outcome="refused_credits")
OUTBOX_PUBLISHED = Counter(
    "relai_outbox_published_total",
    "Outbox rows the relay published to their stream.",
)
RELAY_LAG = Histogram(
    "relai_relay_lag_seconds",
    "Time from an outbox row's commit to its publication by the relay (database clock).",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)
HOP_COMMIT = hop("commit")
"""A submission's time in the core, from its order to its request committed."""
HOP_RECORD = hop("record")
"""A result's time from its entry on ``relai:results`` to its outcome committed."""
HOP_PUSH = hop("push")
"""A state change's time from its commit (``updated_at``) to its WebSocket message sent."""
REQUESTS_BY_OFFER = Counter(
    "relai_requests_total",
    "New requests accepted, by offer (service/action) and handler.",
    ["offer", "handler"],
)
CREDITS_RESERVED = Counter(
    "relai_credits_reserved_total",
    "Credits reserved by new requests (their price), by offer and handler.",
    ["offer", "handler"],
)
CREDITS_SETTLED = Counter(
    "relai_credits_settled_total",
    "Credits charged: reservations settled by a succeeded request.",
)
CREDITS_REFUNDED = Counter(
    "relai_credits_refunded_total",
    "Credits given back: reservations refunded by a failed request.",
)
RESULTS_RECORDED = Counter(
    "relai_results_recorded_total",
    "Request rows the results consumer changed, by the status written.",
    ["status"],
)
CONNECTIONS_REFUSED = Counter(
    "relai_connections_refused_total",
    "Connections and WebSockets the API closed to bound slow or numerous clients, by reason: "
    "header_timeout, body_timeout, ws_per_user.",
    ["reason"],
)

UNMATCHED_ROUTE = "unmatched"
"""The route label of a request no route matched (a 404): the raw path would be unbounded."""
CLIENT_CLOSED = str(CLIENT_CLOSED_REQUEST)
"""The status label of a request whose client went away before its answer was complete (as
nginx logs it): neither a success nor a server error."""
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class MetricsMiddleware:
    """Counts and times HTTP requests by route template. Pure ASGI (``BaseHTTPMiddleware`` costs
    a task and a stream per request); WebSocket and lifespan scopes pass straight through.

    A request whose client left before the answer was complete (``http.disconnect`` received, or
    a send refused) counts as ``499``, whatever the app made of it (an error it raised reading
    the body, a stream it stopped): not as a 5xx. An answer the app did not start for another
    reason counts as ``500``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        complete = False
        gone = False

        async def receive_watching() -> Message:
            nonlocal gone
            message = await receive()
            if message["type"] == "http.disconnect":
                gone = True
            return message

        async def send_with_status(message: Message) -> None:
            nonlocal status, complete, gone
            kind = message["type"]
            if kind == "http.response.start":
                status = message["status"]
            elif kind == "http.response.body" and not message.get("more_body", False):
                complete = True
            try:
                await send(message)
            except OSError:  # ASGI 2.4: the server refuses to send to a client that left
                gone = True
                raise

        start = time.perf_counter()
        try:
            await self.app(scope, receive_watching, send_with_status)
        finally:
            # The router writes the matched route into the scope it was given, i.e. this one.
            route = getattr(scope.get("route"), "path", None) or UNMATCHED_ROUTE
            method = scope["method"] if scope["method"] in _METHODS else "OTHER"
            label = CLIENT_CLOSED if gone and not complete else str(status)
            HTTP_DURATION.labels(method, route).observe(time.perf_counter() - start)
            HTTP_REQUESTS.labels(method, route, label).inc()


def metrics_endpoint(token: str) -> Callable[[Request], Awaitable[Response]]:
    """``GET /metrics`` on the public port, for a deployment that sets ``RELAI_METRICS_TOKEN``:
    the metrics of every process of this API to a scrape that sends the token, 401 otherwise."""

    async def metrics(request: Request) -> Response:
        if not bearer_matches(request.headers.get("authorization"), token):
            raise Unauthorized("a metrics token is required")
        return Response(generate_latest(metrics_registry()), media_type=CONTENT_TYPE_LATEST)

    return metrics
