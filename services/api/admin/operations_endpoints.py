"""What an operator looks at when requests do not end: the dead letters (tasks retired after
killing every worker that ran them) and the requests that look stuck (unfinished, untouched for
a while), and re-driving one of the latter at once instead of waiting for recon. Admin role only
(403).

A dead letter's request has already ended: the worker that retired it reported it failed, and it
was refunded. States only move forward and a request is charged once, so a dead letter is not
run again; it is shown for inspection (its handler, attempt, params with secrets masked, why it
was retired), never its prompt, which is the user's.

A re-drive goes through ``libs.outcomes.redrive``, as recon's: the request is locked, refused
(409) while it has an outbox row or a message on the streams (re-driving live work would run it
twice), and its next attempt is queued through the outbox in the same transaction."""

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, cast

import orjson
from fastapi import APIRouter, Query
from pydantic import BaseModel
from redis.asyncio import Redis

from libs.contracts import DEAD_LETTERS_STREAM, RESULTS_STREAM, TASKS_STREAM
from libs.contracts.streams import MESSAGE_FIELD
from libs.outcomes import redrive as redrive_sql
from libs.security import mask_secrets
from libs.streams import Entry
from services.api.admin import repository
from services.api.admin.dependencies import ADMIN_ONLY, AdminUser
from services.api.deps import PoolDep, RedisDep
from services.api.errors import Conflict, NotFound

router = APIRouter(prefix="/admin", tags=["admin"], responses=ADMIN_ONLY)


class DeadLetter(BaseModel):
    entry_id: str
    """Its id on ``relai:dead-letters``; pass as ``before`` for older ones."""
    dead_lettered_at: datetime
    request_id: uuid.UUID | None
    user: str | None
    request_status: str | None
    """The request's status now (``failed``: it was refunded)."""
    handler: str | None
    attempt: int | None
    step: int | None
    params: dict[str, Any]
    """The task's params, secret-looking values masked."""
    prompt_chars: int | None
    """How long its prompt was (the prompt itself is the user's)."""
    deliveries: int | None
    crashes: int | None
    reason: str


class DeadLetterPage(BaseModel):
    items: list[DeadLetter]
    length: int
    """How many dead letters the stream holds."""


def _int(fields: dict[bytes, bytes], name: bytes) -> int | None:
    try:
        return int(fields[name])
    except (KeyError, ValueError):
        return None


def _dead_letter(entry_id: bytes, fields: dict[bytes, bytes]) -> dict[str, Any]:
    try:
        task = orjson.loads(fields[MESSAGE_FIELD])
    except (KeyError, orjson.JSONDecodeError):
        task = None
    if not isinstance(task, dict):
        task = {}
    prompt = task.get("prompt")
    params = task.get("params")
    return {
        "entry_id": entry_id.decode(),
        "dead_lettered_at": datetime.fromtimestamp(int(entry_id.split(b"-")[0]) / 1000, UTC),
        "request_id": redrive_sql.message_request_id(fields),
        "handler": task.get("handler") if isinstance(task.get("handler"), str) else None,
        "attempt": task.get("attempt") if isinstance(task.get("attempt"), int) else None,
        "step": task.get("step") if isinstance(task.get("step"), int) else None,
        "params": mask_secrets(params) if isinstance(params, dict) else {},
        "prompt_chars": len(prompt) if isinstance(prompt, str) else None,
        "deliveries": _int(fields, b"deliveries"),
        "crashes": _int(fields, b"crashes"),
        "reason": fields.get(b"reason", b"").decode(errors="replace"),
    }


STREAM_ID_MAX = 2**64 - 1


def _below(entry_id: str) -> str | None:
    """The bound of ``XREVRANGE`` for the entries before ``entry_id``: None when none can be (a
    stream's ids start past ``0-0``), ``+`` for an id past any a stream can hold."""
    ms, seq = (int(part) for part in entry_id.split("-"))
    if ms > STREAM_ID_MAX:
        return "+"
    if seq > STREAM_ID_MAX:
        return f"{ms}-{STREAM_ID_MAX}"
    if ms == seq == 0:
        return None
    return f"({ms}-{seq}"


@router.get("/dead-letters", response_model=DeadLetterPage)
async def dead_letters(
    _: AdminUser,
    pool: PoolDep,
    redis: RedisDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    before: Annotated[str | None, Query(pattern=r"^\d{1,20}-\d{1,20}$")] = None,
) -> DeadLetterPage:
    """The latest dead letters, newest first (older ones: ``before`` the last ``entry_id``),
    each with its request's owner and status now."""
    top = _below(before) if before else "+"
    reply: list[Entry] = []
    if top is not None:
        reply = cast(
            list[Entry], await redis.xrevrange(DEAD_LETTERS_STREAM, max=top, min="-", count=limit)
        )
    length = int(await redis.xlen(DEAD_LETTERS_STREAM))
    items = [_dead_letter(entry_id, fields) for entry_id, fields in reply or []]
    ids = [i["request_id"] for i in items if i["request_id"] is not None]
    owners = await repository.request_owners(pool, ids)
    for item in items:
        user, status = owners.get(item["request_id"], (None, None))
        item["user"], item["request_status"] = user, status
    return DeadLetterPage(items=[DeadLetter.model_validate(i) for i in items], length=length)


class StuckRequest(BaseModel):
    id: uuid.UUID
    user: str
    target: str
    """The offer (``service/action``) or ``deal/<slug>``."""
    status: str
    attempt: int
    created_at: datetime
    updated_at: datetime
    idle_s: float
    """Seconds since it last changed (by the database clock)."""
    queued: bool
    """It has an outbox row: the relay has yet to publish it (not re-drivable)."""
    in_flight: bool
    """A worker holds it, or it waits on a stream or under an integration's limits (not
    re-drivable: it would run twice)."""


async def _in_flight(redis: Redis) -> set[uuid.UUID]:
    return await redrive_sql.in_flight(redis, (TASKS_STREAM, RESULTS_STREAM))


@router.get("/requests/stuck", response_model=list[StuckRequest])
async def stuck_requests(
    _: AdminUser,
    pool: PoolDep,
    redis: RedisDep,
    idle_s: Annotated[float, Query(ge=0, le=10**9)] = 60.0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[StuckRequest]:
    """Unfinished requests untouched for ``idle_s`` seconds or more, oldest first. Recon
    re-drives those past their deadline by itself (``RELAI_RECON_STUCK_AFTER_S``); this shows
    them sooner, and whether each is live somewhere."""
    rows = await repository.idle_requests(pool, idle_s=idle_s, limit=limit)
    live = await _in_flight(redis) if rows else set()
    return [StuckRequest.model_validate({**dict(r), "in_flight": r["id"] in live}) for r in rows]


class Redriven(BaseModel):
    id: uuid.UUID
    attempt: int | None
    """The new attempt (a single offer's request)."""
    steps: list[int]
    """The steps queued again (a deal's request)."""


@router.post(
    "/requests/{request_id}/redrive",
    response_model=Redriven,
    responses={
        404: {"description": "No such request"},
        409: {"description": "It has ended, is queued or in flight, or changed meanwhile"},
    },
)
async def redrive(request_id: uuid.UUID, _: AdminUser, pool: PoolDep, redis: RedisDep) -> Redriven:
    """Queue the request's next attempt now (a deal's: each of its open steps'), as recon does
    once it is past its deadline."""
    # As recon: Postgres first (no outbox row: the relay's XADD was committed), then the
    # streams, then the lock, which holds only if nothing moved since the first read.
    row = await repository.request_state(pool, request_id)
    if row is None:
        raise NotFound("no such request")
    if row["status"] not in ("pending", "running"):
        raise Conflict(f"the request has ended ({row['status']}): it is never run again")
    if row["queued"]:
        raise Conflict("the request is queued in the outbox: the relay publishes it")
    if request_id in await _in_flight(redis):
        raise Conflict("the request is in flight (on a stream, or a worker holds it)")
    changed = Conflict("the request changed meanwhile: look again")
    async with pool.acquire() as conn, conn.transaction():
        if row["deal"]:
            if not await redrive_sql.lock_deal(conn, request_id, updated_at=row["updated_at"]):
                raise changed
            steps = await redrive_sql.open_steps(conn, request_id)
            for step in steps:
                await redrive_sql.redrive_step(conn, request_id, step)
            return Redriven(id=request_id, attempt=None, steps=[s.idx for s in steps])
        locked = await redrive_sql.lock_request(conn, request_id, updated_at=row["updated_at"])
        if locked is None:
            raise changed
        await redrive_sql.redrive(conn, locked)
        return Redriven(id=request_id, attempt=locked.attempt + 1, steps=[])
