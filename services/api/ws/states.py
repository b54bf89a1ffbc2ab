"""What the WebSockets send about a request: its state (``{"id", "status", "results", "error",
"updated_at"}``, ``usage`` once it ended with some, and a pending one's place in the queue), and
its place as it changes while it waits."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import orjson
from fastapi import WebSocket

from libs.contracts import RequestEvent, RequestStatus, status_rank
from libs.db import PgPool
from libs.logs import get_logger
from services.api.files.links import linked_results
from services.api.submission import reads as repository

log = get_logger(__name__)


def _state(
    request_id: uuid.UUID,
    status: str,
    results: Any,
    error: Any,
    updated_at: Any,
    usage: Any,
    place: tuple[int, int | None] | None = None,
) -> str:
    state = {
        "id": str(request_id),
        "status": status,
        "results": linked_results(results),
        "error": error,
        "updated_at": updated_at,
    }
    if usage is not None:
        state["usage"] = usage
    if place is not None:
        state["queue_position"], state["queue_eta_s"] = place
    return orjson.dumps(state, option=orjson.OPT_UTC_Z).decode()


def row_state(row: Any, place: tuple[int, int | None] | None = None) -> str:
    """A request's state; ``place``: a pending one's ``queue_position`` and ``queue_eta_s``."""
    return _state(
        row["id"],
        row["status"],
        row["results"],
        row["error"],
        row["updated_at"],
        row["usage"],
        place,
    )


def event_state(event: RequestEvent) -> str:
    return _state(
        event.request_id, event.status, event.results, event.error, event.updated_at, event.usage
    )


async def send_place(
    ws: WebSocket,
    pool: PgPool,
    request_id: uuid.UUID,
    ranks: dict[uuid.UUID, int],
    lock: asyncio.Lock,
    every_s: float,
    last: tuple[int, int | None] | None,
) -> None:
    """While the request is pending, its place in the queue (``{"event": "queue", "id",
    "queue_position", "queue_eta_s"}``, as ``GET /svc/request/{id}`` counts them) each time it
    changes from ``last`` (sent with the first state), looked up every ``every_s``. Checked and
    sent under the socket's send lock, so that a place never follows the state that ended the
    wait."""
    pending = status_rank(RequestStatus.PENDING)
    while ranks.get(request_id) == pending:
        await asyncio.sleep(every_s)
        try:
            place = repository.place_of(*await repository.queue_place(pool, request_id))
        except (asyncpg.PostgresError, OSError) as exc:  # the states still come; places stop
            log.warning("websocket place lookup failed", error=str(exc))
            return
        async with lock:
            if ranks.get(request_id) != pending:
                return
            if place != last:
                position, eta = place
                text = {
                    "event": "queue",
                    "id": str(request_id),
                    "queue_position": position,
                    "queue_eta_s": eta,
                }
                await ws.send_text(orjson.dumps(text).decode())
                last = place
