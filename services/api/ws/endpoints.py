"""``/ws/requests/{id}``: one request's current state, then every change until it is final.
``/ws``: every change to the caller's requests, after the current state of the unfinished ones
(or, with ``?since=<updated_at>``, of every request changed since then).

Authenticate with ``Authorization: Bearer <key or token>``, or, where headers cannot be set
(browsers), with the subprotocols ``bearer, <key or token>`` or ``ticket, <ticket>`` (a
single-use ticket from ``POST /ws/ticket``); the server echoes ``bearer`` or ``ticket``. With
``RELAI_WS_ALLOWED_ORIGINS`` set, a browser page from another origin is refused with 403 before
the handshake. Close codes: 4401 unauthorized (also when the key is revoked or the token
expires while the socket is open), 4404 no such request, 1013 fell too far behind (reconnect to
get the current state) or, at connect, the credential's rate limit is spent or the address
failed to authenticate too often (the reason says when to retry), 4429 the user holds
``RELAI_WS_MAX_PER_USER`` sockets open on this process already.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import BaseModel
from redis.asyncio import Redis

from libs.contracts import FINAL_STATUSES, RequestStatus, status_rank
from libs.db import PgPool
from libs.logs import get_logger
from libs.loops import cancel_and_wait
from libs.telemetry import since_epoch
from services.api.auth.dependencies import CurrentUser, bearer_token
from services.api.auth.service import Authenticator, Principal
from services.api.auth.throttle import Client
from services.api.deps import AuthDep, HubDep, PoolDep, RedisDep, SettingsDep
from services.api.errors import RelaiError, TooManyRequests, Unauthorized
from services.api.metrics import CONNECTIONS_REFUSED, HOP_PUSH
from services.api.state import app_state
from services.api.submission import reads as repository
from services.api.ws import tickets
from services.api.ws.chunks import EVENT_ID, ChunkFeed
from services.api.ws.hub import Hub, Subscription
from services.api.ws.states import event_state, row_state, send_place

log = get_logger(__name__)

router = APIRouter(tags=["websocket"])

BEARER_PROTOCOL = "bearer"
TICKET_PROTOCOL = "ticket"
SNAPSHOT_MAX = 10_000


class Ticket(BaseModel):
    ticket: str
    """Pass as the subprotocols ``ticket, <ticket>``; opens one socket."""
    expires_in: int
    """Seconds left to use it."""


@router.post("/ws/ticket", response_model=Ticket, tags=["websocket"])
async def ws_ticket(user: CurrentUser, redis: RedisDep, settings: SettingsDep) -> Ticket:
    """A single-use, short-lived ticket for opening a WebSocket where headers cannot be set."""
    ttl = settings.ws_ticket_ttl_s
    return Ticket(ticket=await tickets.issue(redis, user, ttl_s=ttl), expires_in=ttl)


def _credentials(ws: WebSocket) -> tuple[str | None, str | None]:
    """The credential and the subprotocol it came as (``bearer`` or ``ticket``; None for the
    ``Authorization`` header)."""
    token = bearer_token(ws.headers.get("authorization"))
    if token:
        return token, None
    protocols = [p.strip() for p in ws.headers.get("sec-websocket-protocol", "").split(",")]
    if len(protocols) == 2 and protocols[0].lower() in (BEARER_PROTOCOL, TICKET_PROTOCOL):
        return protocols[1], protocols[0].lower()
    return None, None


@dataclass(frozen=True, slots=True)
class _Caller:
    user: Principal
    auth: Authenticator


async def _authenticate(
    auth: Authenticator, redis: Redis, token: str | None, protocol: str | None, client: Client
) -> Principal:
    """A key or token as over HTTP (the address throttle included); a ticket, single-use and
    unguessable, is redeemed in Redis whatever the address, but a failure counts."""
    if protocol != TICKET_PROTOCOL:
        return await auth.authenticate(token, client)
    user = await tickets.redeem(redis, token or "")
    if user is None or not await auth.still_valid(user):
        auth.throttle.failed(client)
        raise Unauthorized("unknown, used or expired ticket")
    return user


@asynccontextmanager
async def _opened(ws: WebSocket, auth: Authenticator, hub: Hub) -> AsyncIterator[_Caller | None]:
    """The authenticated caller, holding one of its user's sockets on this process until the
    block ends, however it ends (client or server close, error, expired credential); None when
    the socket was refused and closed."""
    caller = await _accept(ws, auth)
    if caller is None:
        yield None
        return
    user_id = caller.user.id
    if not hub.hold_socket(user_id):
        CONNECTIONS_REFUSED.labels("ws_per_user").inc()
        log.info("websocket refused: the user's cap is reached", user_id=str(user_id))
        reason = f"too many open WebSockets (at most {hub.max_per_user} per user)"
        await ws.close(code=4429, reason=reason)
        yield None
        return
    try:
        yield caller
    finally:
        hub.release_socket(user_id)


async def _accept(ws: WebSocket, auth: Authenticator) -> _Caller | None:
    state = app_state(ws)
    allowed = state.settings.ws_allowed_origins
    origin = ws.headers.get("origin")
    if allowed and origin is not None and origin not in allowed:
        await ws.close()  # before the handshake completes: the client gets HTTP 403
        return None
    token, subprotocol = _credentials(ws)
    await ws.accept(subprotocol=subprotocol)
    try:
        user = await _authenticate(auth, state.redis, token, subprotocol, ws.scope.get("client"))
        await state.limiter.check(user)
    except Unauthorized as exc:
        await ws.close(code=4401, reason=exc.message)
        return None
    except TooManyRequests as exc:
        await ws.close(code=1013, reason=exc.message)
        return None
    except RelaiError as exc:
        if exc.status_code != 503:
            raise
        # The identity provider (or the database) does not answer: try again later.
        await ws.close(code=1013, reason=exc.message[:120])
        return None
    return _Caller(user, auth)


async def _close_when_client_leaves(ws: WebSocket, sub: Subscription) -> None:
    try:
        while (await ws.receive())["type"] != "websocket.disconnect":
            pass
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        sub.close()


async def _close_when_revoked(caller: _Caller, sub: Subscription, revoked: asyncio.Event) -> None:
    """Check the socket's credential again each time the key cache may have forgotten it, and
    when its token expires."""
    while True:
        delay = caller.auth.ttl_s
        if caller.user.expires_at is not None:
            delay = min(delay, max(0.0, caller.user.expires_at - time.time()))
        await asyncio.sleep(delay)
        if not await caller.auth.still_valid(caller.user):
            revoked.set()
            sub.close()
            return


async def _stream(
    ws: WebSocket,
    sub: Subscription,
    caller: _Caller,
    ranks: dict[uuid.UUID, int],
    *,
    until_final: bool,
    send: Callable[[str], Awaitable[None]] | None = None,
    before_final: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Send each event that moves a request forward (by ``ranks``, the rank last sent per
    request) until the client leaves, falls behind, its key is revoked, or (``until_final``) a
    final state is sent. ``before_final`` runs before a final state is sent."""
    send = send or ws.send_text
    revoked = asyncio.Event()
    reader = asyncio.create_task(_close_when_client_leaves(ws, sub))
    checker = asyncio.create_task(_close_when_revoked(caller, sub, revoked))
    try:
        while batch := await sub.next_batch():
            for event in batch:
                rank = status_rank(event.status)
                if rank <= ranks.get(event.request_id, -1):
                    continue
                if before_final is not None and event.status in FINAL_STATUSES:
                    await before_final()
                await send(event_state(event))
                HOP_PUSH.observe(since_epoch(event.updated_at.timestamp()))
                if event.status not in FINAL_STATUSES:
                    ranks[event.request_id] = rank
                    continue
                ranks.pop(event.request_id, None)
                if until_final:
                    await ws.close()
                    return
        if revoked.is_set():
            expired = caller.user.expires_at is not None and time.time() >= caller.user.expires_at
            reason = "the token has expired" if expired else "the API key was revoked"
            await ws.close(code=4401, reason=reason)
        elif sub.overflowed:
            log.warning("websocket fell too far behind; closing it")
            await ws.close(code=1013, reason="too far behind; reconnect for the current state")
    except WebSocketDisconnect:
        return
    finally:
        reader.cancel()
        checker.cancel()


@router.websocket("/ws/requests/{request_id}")
async def watch_request(
    ws: WebSocket,
    request_id: str,
    pool: PoolDep,
    auth: AuthDep,
    hub: HubDep,
    redis: RedisDep,
    last_event_id: str | None = None,
) -> None:
    """The request's state, its partial output (chunk events, each with its ``event_id``, from
    the start or after ``last_event_id``) as it is produced, and its final state last."""
    async with _opened(ws, auth, hub) as caller:
        if caller is not None:
            await _watch_request(ws, caller, request_id, pool, hub, redis, last_event_id)


async def _watch_request(
    ws: WebSocket,
    caller: _Caller,
    request_id: str,
    pool: PgPool,
    hub: Hub,
    redis: Redis,
    last_event_id: str | None,
) -> None:
    try:
        parsed = uuid.UUID(request_id)
    except ValueError:
        await ws.close(code=4404, reason="no such request")
        return
    if last_event_id is not None and not EVENT_ID.match(last_event_id):
        await ws.close(code=4400, reason="last_event_id must be an event id such as 1-0")
        return
    with hub.watch_request(parsed) as sub, hub.watch_chunks(parsed) as wake:
        row = await repository.get_view(pool, parsed, caller.user.id)
        if row is None:
            await ws.close(code=4404, reason="no such request")
            return
        feed = ChunkFeed(redis, parsed, after=last_event_id or "0-0", send=ws.send_text, wake=wake)
        if RequestStatus(row["status"]) in FINAL_STATUSES:
            await feed.drain()
            await ws.send_text(row_state(row))
            await ws.close()
            return
        first = None
        if row["status"] == RequestStatus.PENDING:
            first = repository.place_of(*await repository.queue_place(pool, parsed))
        await ws.send_text(row_state(row, first))

        async def send(text: str) -> None:
            async with feed.lock:
                await ws.send_text(text)

        ranks = {parsed: status_rank(RequestStatus(row["status"]))}
        every_s = app_state(ws).settings.ws_place_every_s
        place = asyncio.create_task(send_place(ws, pool, parsed, ranks, feed.lock, every_s, first))
        feed.start()
        try:
            await _stream(
                ws, sub, caller, ranks, until_final=True, send=send, before_final=feed.finish
            )
        finally:
            await cancel_and_wait([place])
            await feed.stop()


@router.websocket("/ws")
async def watch_all(
    ws: WebSocket,
    pool: PoolDep,
    auth: AuthDep,
    hub: HubDep,
    since: datetime | None = None,
) -> None:
    """Every change to the caller's requests. First the current state of the unfinished ones;
    or, with ``since`` (an ``updated_at`` this socket sent before), every request changed since
    then, so that a client reconnecting with its last ``updated_at`` misses nothing."""
    async with _opened(ws, auth, hub) as caller:
        if caller is not None:
            await _watch_all(ws, caller, pool, hub, since)


async def _watch_all(
    ws: WebSocket, caller: _Caller, pool: PgPool, hub: Hub, since: datetime | None
) -> None:
    user = caller.user
    with hub.watch_user(user.id) as sub:
        if since is None:
            rows = await repository.unfinished_views(pool, user.id, limit=SNAPSHOT_MAX)
        else:
            rows = await repository.views_changed_since(pool, user.id, since, limit=SNAPSHOT_MAX)
        ranks: dict[uuid.UUID, int] = {}
        for row in rows:
            status = RequestStatus(row["status"])
            if status not in FINAL_STATUSES:
                ranks[row["id"]] = status_rank(status)
            await ws.send_text(row_state(row))
        await _stream(ws, sub, caller, ranks, until_final=False)
