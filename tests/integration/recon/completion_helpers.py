"""Requests as the completion loop finds them, and the loop itself, for the recon tests."""

import uuid
from typing import Any

import asyncpg
from redis.asyncio import Redis

from libs.accounts import NewUser
from libs.contracts import TASKS_STREAM, ResultMessage, TaskMessage
from libs.contracts.files import input_file_id
from libs.files.uploads import InputFile, register_blobs
from services.api.submission.repository import NewRequest, insert_one
from services.recon.completion.service import CompletionLoop
from tests.support import create_user, load_demo_catalog

PRICE = 5  # demo/sleep
TRACE = f"00-{'a' * 32}-{'b' * 16}-01"


def completion(pool: "asyncpg.Pool[Any]", redis: Redis, *, batch: int = 100) -> CompletionLoop:
    return CompletionLoop(
        pool,
        redis,
        interval_s=60,
        stuck_after_s=120,
        max_attempts=3,
        batch=batch,
        deadline_grace_s=5,
        stream_chunk=2,
    )


async def submitted(
    pool: "asyncpg.Pool[Any]",
    *,
    attempt: int = 1,
    status: str = "pending",
    age_s: float = 600,
    with_file: bool = False,
) -> tuple[uuid.UUID, NewUser]:
    """A request submitted as the API does, whose outbox row the relay has already published
    (and Redis then lost), last touched ``age_s`` ago by the database clock; ``with_file``: with
    an input file ``image``."""
    await load_demo_catalog(pool)
    user = await create_user(pool, name=f"u{uuid.uuid4().hex[:8]}", credits=10)
    offer_id = await pool.fetchval("SELECT id FROM offers WHERE action = 'sleep'")
    request_id = uuid.uuid4()
    files = (input_file(request_id),) if with_file else ()
    await register_blobs(pool, [(f.sha256, f.bytes) for f in files])
    task = TaskMessage(
        request_id=request_id,
        traceparent=TRACE,
        attempt=1,
        handler="echo.delay",
        prompt="hi",
        files={f.name: f.ref() for f in files} or None,
    )
    new = NewRequest(
        id=request_id,
        user_id=user.id,
        offer_id=offer_id,
        inputs={"text": "hi"},
        prompt="hi",
        price=PRICE,
        traceparent=TRACE,
        payloads=(task.model_dump_json(exclude_none=True),),
        deal_id=None,
        files=files,
    )
    assert await insert_one(pool, new)
    await pool.execute("DELETE FROM outbox WHERE request_id = $1", request_id)
    await pool.execute(
        """UPDATE requests SET attempt = $2, status = $3,
                  updated_at = now() - make_interval(secs => $4)
           WHERE id = $1""",
        request_id,
        attempt,
        status,
        age_s,
    )
    return request_id, user


def input_file(request_id: uuid.UUID) -> InputFile:
    return InputFile(
        id=input_file_id(request_id, "image"),
        name="image",
        sha256="ab" * 32,
        media_type="image/png",
        bytes=123,
        width=3,
        height=2,
    )


async def state(pool: "asyncpg.Pool[Any]", request_id: uuid.UUID) -> asyncpg.Record:
    row: asyncpg.Record | None = await pool.fetchrow(
        """SELECT status, attempt, error, now() - updated_at < interval '1 minute' AS touched,
                  (SELECT count(*) FROM outbox WHERE request_id = r.id) AS outbox_rows
           FROM requests r WHERE id = $1""",
        request_id,
    )
    assert row is not None
    return row


def message(stream: str, request_id: uuid.UUID) -> TaskMessage | ResultMessage:
    if stream == TASKS_STREAM:
        return TaskMessage(request_id=request_id, attempt=1, handler="echo.text", prompt="x")
    return ResultMessage(request_id=request_id, attempt=1, kind="started", worker="w")
