"""``/ws/requests/{id}``: one request's current state, then every change until it is final.
``/ws``: every change to the caller's requests, after the current state of the unfinished ones.

Authenticate with ``Authorization: Bearer <key>``, or, where headers cannot be set (browsers),
with the subprotocols ``bearer, <key>``. Close codes: 4401 unauthorized, 4404 no such request,
1013 fell too far behind (reconnect to get the current state).
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import orjson
from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from libs.contracts import FINAL_STATUSES, RequestEvent, RequestStatus, status_rank
from services.api.auth.dependencies import bearer_token
from services.api.auth.service import Principal
from services.api.deps import AuthDep, HubDep, PoolDep
from services.api.errors import Unauthorized
from services.api.requests import repository
from services.api.ws.hub import Subscription

router = APIRouter(tags=["websocket"])

BEARER_PROTOCOL = "bearer"
UNFINISHED_SNAPSHOT_MAX = 1000


def _credentials(ws: WebSocket) -> tuple[str | None, str | None]:
    """The API key and the subprotocol to echo back, if the key came as one."""
    token = bearer_token(ws.headers.get("authorization"))
    if token:
        return token, None
    protocols = [p.strip() for p in ws.headers.get("sec-websocket-protocol", "").split(",")]
    if len(protocols) == 2 and protocols[0].lower() == BEARER_PROTOCOL:
        return protocols[1], BEARER_PROTOCOL
    return None, None


async def _accept(ws: WebSocket, auth: Any) -> Principal | None:
    token, subprotocol = _credentials(ws)
    await ws.accept(subprotocol=subprotocol)
    try:
        return await auth.authenticate(token)  # type: ignore[no-any-return]
    except Unauthorized as exc:
        await ws.close(code=4401, reason=exc.message)
        return None


def _state(request_id: uuid.UUID, status: str, results: Any, error: Any, updated_at: Any) -> str:
    return orjson.dumps(
        {
            "id": str(request_id),
            "status": status,
            "results": results,
            "error": error,
            "updated_at": updated_at,
        }
    ).decode()


def _row_state(row: Any) -> str:
    return _state(row["id"], row["status"], row["results"], row["error"], row["updated_at"])


def _event_state(event: RequestEvent) -> str:
    return _state(event.request_id, event.status, event.results, event.error, event.updated_at)


async def _next_event(
    ws: WebSocket, sub: Subscription, closed: asyncio.Event
) -> RequestEvent | None:
    """The next event, or None when the client left or fell behind."""
    getter = asyncio.ensure_future(sub.queue.get())
    overflow = asyncio.ensure_future(sub.overflowed.wait())
    gone = asyncio.ensure_future(closed.wait())
    done, pending = await asyncio.wait(
        {getter, overflow, gone}, return_when=asyncio.FIRST_COMPLETED
    )
    for task in pending:
        task.cancel()
    if overflow in done:
        await ws.close(code=1013, reason="too far behind; reconnect for the current state")
        return None
    if getter in done:
        return getter.result()
    return None


async def _watch_disconnect(ws: WebSocket, closed: asyncio.Event) -> None:
    try:
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                break
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        closed.set()


@router.websocket("/ws/requests/{request_id}")
async def watch_request(
    ws: WebSocket, request_id: str, pool: PoolDep, auth: AuthDep, hub: HubDep
) -> None:
    user = await _accept(ws, auth)
    if user is None:
        return
    try:
        parsed = uuid.UUID(request_id)
    except ValueError:
        await ws.close(code=4404, reason="no such request")
        return
    with hub.watch_request(parsed) as sub:
        row = await repository.get_view(pool, parsed, user.id)
        if row is None:
            await ws.close(code=4404, reason="no such request")
            return
        await ws.send_text(_row_state(row))
        rank = status_rank(RequestStatus(row["status"]))
        if RequestStatus(row["status"]) in FINAL_STATUSES:
            await ws.close()
            return
        closed = asyncio.Event()
        reader = asyncio.create_task(_watch_disconnect(ws, closed))
        try:
            while (event := await _next_event(ws, sub, closed)) is not None:
                if status_rank(event.status) <= rank:
                    continue
                rank = status_rank(event.status)
                await ws.send_text(_event_state(event))
                if event.status in FINAL_STATUSES:
                    await ws.close()
                    return
        except WebSocketDisconnect:
            return
        finally:
            reader.cancel()


@router.websocket("/ws")
async def watch_all(ws: WebSocket, pool: PoolDep, auth: AuthDep, hub: HubDep) -> None:
    user = await _accept(ws, auth)
    if user is None:
        return
    with hub.watch_user(user.id) as sub:
        ranks: dict[uuid.UUID, int] = {}
        for status in (RequestStatus.PENDING, RequestStatus.RUNNING):
            rows = await repository.list_views(
                pool, user.id, before=None, status=status, limit=UNFINISHED_SNAPSHOT_MAX
            )
            for row in rows:
                ranks[row["id"]] = status_rank(status)
                await ws.send_text(
                    _state(
                        row["id"], row["status"], row["results"], row["error"], row["updated_at"]
                    )
                )
        closed = asyncio.Event()
        reader = asyncio.create_task(_watch_disconnect(ws, closed))
        try:
            while (event := await _next_event(ws, sub, closed)) is not None:
                rank = status_rank(event.status)
                if rank <= ranks.get(event.request_id, -1):
                    continue
                if event.status in FINAL_STATUSES:
                    ranks.pop(event.request_id, None)
                else:
                    ranks[event.request_id] = rank
                await ws.send_text(_event_state(event))
        except WebSocketDisconnect:
            return
        finally:
            reader.cancel()
