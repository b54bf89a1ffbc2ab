"""File results are registered by the statement that records the success (a blob row and a file
row, in one round trip), once however often the result is delivered; expiry deletes a request's
files with its results."""

import uuid
from typing import Any

import asyncpg
import pytest
from redis.asyncio import Redis

from libs.accounts import NewUser
from libs.blobs.store import sha256_of
from libs.contracts.files import input_file_id, result_file_id
from libs.outcomes import Ended, StepEnded, expire_due, record_outcomes
from tests.deals_support import load_deals_catalog, record_steps, submit_deal, submit_offer
from tests.files_support import blob_rows, file_result, file_rows
from tests.support import create_user

PNG_A = b"\x89PNG a"
PNG_B = b"\x89PNG b"


@pytest.fixture
async def user(db_pool: "asyncpg.Pool[Any]", redis_client: Redis) -> NewUser:
    await load_deals_catalog(db_pool)
    return await create_user(db_pool, name="fran", credits=1000)


async def test_a_success_registers_its_file_results_once(
    db_pool: "asyncpg.Pool[Any]", user: NewUser
) -> None:
    request_id = await submit_offer(db_pool, user.id, "demo", "echo", "draw")
    results = [
        "a caption",
        file_result(request_id, 1, PNG_A),
        file_result(request_id, 2, PNG_A),  # the same bytes twice: one blob, two files
        file_result(request_id, 3, PNG_B),
    ]
    done = Ended(request_id, 1, "succeeded", results)

    rows = await record_outcomes(db_pool, ended=[done])

    assert [r["status"] for r in rows] == ["succeeded"]
    assert await blob_rows(db_pool) == {sha256_of(PNG_A): len(PNG_A), sha256_of(PNG_B): len(PNG_B)}
    files = await file_rows(db_pool)
    assert [(f["id"], f["name"], f["sha256"]) for f in files] == [
        (result_file_id(request_id, None, 1), "1", sha256_of(PNG_A)),
        (result_file_id(request_id, None, 2), "2", sha256_of(PNG_A)),
        (result_file_id(request_id, None, 3), "3", sha256_of(PNG_B)),
    ]
    assert {
        (f["user_id"], f["purpose"], f["request_id"], f["step"], f["media_type"], f["width"])
        for f in files
    } == {(user.id, "result", request_id, None, "image/png", 2)}
    touched = await db_pool.fetchval("SELECT max(touched_at) FROM blobs")

    # Delivered again (a redelivery, a worker presumed dead that finished after all): nothing.
    assert await record_outcomes(db_pool, ended=[done]) == []
    assert len(await file_rows(db_pool)) == 3
    assert await db_pool.fetchval("SELECT max(touched_at) FROM blobs") == touched


async def test_a_blob_already_known_is_touched_and_a_batch_may_share_a_blob(
    db_pool: "asyncpg.Pool[Any]", user: NewUser
) -> None:
    await db_pool.execute(
        "INSERT INTO blobs (sha256, size, touched_at) VALUES ($1, $2, now() - interval '1 day')",
        sha256_of(PNG_A),
        len(PNG_A),
    )
    first = await submit_offer(db_pool, user.id, "demo", "echo", "one")
    second = await submit_offer(db_pool, user.id, "demo", "echo", "two")

    await record_outcomes(
        db_pool,
        ended=[
            Ended(first, 1, "succeeded", [file_result(first, 0, PNG_A)]),
            Ended(second, 1, "succeeded", [file_result(second, 0, PNG_A)]),
        ],
    )

    assert await blob_rows(db_pool) == {sha256_of(PNG_A): len(PNG_A)}
    age = await db_pool.fetchval("SELECT now() - touched_at FROM blobs")
    assert age.total_seconds() < 60
    assert {f["request_id"] for f in await file_rows(db_pool)} == {first, second}


async def test_a_failure_or_a_result_without_files_registers_nothing(
    db_pool: "asyncpg.Pool[Any]", user: NewUser
) -> None:
    failed = await submit_offer(db_pool, user.id, "demo", "echo", "no")
    texts = await submit_offer(db_pool, user.id, "demo", "echo", "text")
    odd = await submit_offer(db_pool, user.id, "demo", "echo", "odd")

    await record_outcomes(
        db_pool,
        ended=[
            Ended(failed, 1, "failed", error="boom"),
            Ended(texts, 1, "succeeded", ["x", {"type": "text", "text": "y"}, 3, None]),
            Ended(odd, 1, "succeeded", None),
        ],
    )

    assert await blob_rows(db_pool) == {}
    assert await file_rows(db_pool) == []


async def test_a_deal_step_registers_its_file_results_once(
    db_pool: "asyncpg.Pool[Any]", user: NewUser
) -> None:
    submitted = await submit_deal(
        db_pool, user.id, "bundle", {"text": "t", "name": "n", "age": "1"}
    )
    done = StepEnded(
        submitted.id, 1, 1, "succeeded", ["text", file_result(submitted.id, 1, PNG_B, step=1)]
    )

    await record_steps(db_pool, ended=[done])
    await record_steps(db_pool, ended=[done])

    files = await file_rows(db_pool)
    assert [(f["id"], f["step"], f["name"], f["user_id"]) for f in files] == [
        (result_file_id(submitted.id, 1, 1), 1, "1", user.id)
    ]
    assert await blob_rows(db_pool) == {sha256_of(PNG_B): len(PNG_B)}


async def _add_input(
    pool: "asyncpg.Pool[Any]", user: NewUser, request_id: uuid.UUID | None, data: bytes
) -> str:
    """A file row as the API writes it: an input of ``request_id``, or an upload (None)."""
    file_id = (
        input_file_id(request_id, "image")
        if request_id
        else "file-" + uuid.uuid4().hex  # an upload of the user's
    )
    await pool.execute(
        "INSERT INTO blobs (sha256, size) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        sha256_of(data),
        len(data),
    )
    await pool.execute(
        """INSERT INTO files (id, user_id, sha256, purpose, media_type, bytes, request_id, name)
           VALUES ($1, $2, $3, $4, 'image/png', $5, $6, $7)""",
        file_id,
        user.id,
        sha256_of(data),
        "input" if request_id else "upload",
        len(data),
        request_id,
        "image" if request_id else None,
    )
    return file_id


async def test_expiry_deletes_a_requests_files_and_leaves_uploads(
    db_pool: "asyncpg.Pool[Any]", user: NewUser
) -> None:
    await db_pool.execute("UPDATE offers SET expiration = 60")
    old = await submit_offer(db_pool, user.id, "demo", "echo", "old")
    young = await submit_offer(db_pool, user.id, "demo", "echo", "young")
    deal = await submit_deal(db_pool, user.id, "bundle", {"text": "t", "name": "n", "age": "1"})
    upload = await _add_input(db_pool, user, None, PNG_A)
    await _add_input(db_pool, user, old, PNG_A)
    await record_outcomes(
        db_pool,
        ended=[
            Ended(old, 1, "succeeded", [file_result(old, 0, PNG_B)]),
            Ended(young, 1, "succeeded", [file_result(young, 0, PNG_B)]),
        ],
    )
    await record_steps(
        db_pool,
        ended=[StepEnded(deal.id, 0, 1, "succeeded", [file_result(deal.id, 0, PNG_B, step=0)])],
    )
    await db_pool.execute(
        """UPDATE requests SET created_at = created_at - interval '61 seconds',
                  finished_at = finished_at - interval '61 seconds'
           WHERE id = ANY($1::uuid[])""",
        [old, deal.id],
    )

    async with db_pool.acquire() as conn, conn.transaction():
        expired = await expire_due(conn, limit=10)

    assert {r["id"] for r in expired} == {old, deal.id}
    left = await file_rows(db_pool)
    assert {(f["id"], f["purpose"]) for f in left} == {
        (upload, "upload"),
        (result_file_id(young, None, 0), "result"),
    }
    # The blobs stay until recon's collection finds them unreferenced.
    assert set(await blob_rows(db_pool)) == {sha256_of(PNG_A), sha256_of(PNG_B)}


async def test_a_malformed_file_reference_is_skipped_and_the_batch_recorded(
    db_pool: "asyncpg.Pool[Any]", user: NewUser
) -> None:
    odd = await submit_offer(db_pool, user.id, "demo", "echo", "odd")
    good = await submit_offer(db_pool, user.id, "demo", "echo", "good")
    ref = file_result(odd, 0, PNG_A)
    malformed = [
        {"type": "file"},
        {**ref, "id": "not-a-file-id"},
        {**ref, "sha256": "XYZ"},
        {**ref, "bytes": -1},
        {**ref, "bytes": "many"},
        {**ref, "media_type": None},
    ]
    lenient = {**file_result(odd, 6, PNG_B), "width": 2.5, "height": "tall"}

    rows = await record_outcomes(
        db_pool,
        ended=[
            Ended(odd, 1, "succeeded", [*malformed, lenient]),
            Ended(good, 1, "succeeded", [file_result(good, 0, PNG_A)]),
        ],
    )

    assert {r["status"] for r in rows} == {"succeeded"}
    files = await file_rows(db_pool)
    assert [(f["request_id"], f["name"], f["width"], f["height"]) for f in files] == sorted(
        [(odd, "6", None, None), (good, "0", 2, 3)], key=lambda f: str(f[0])
    )
    assert await blob_rows(db_pool) == {sha256_of(PNG_A): len(PNG_A), sha256_of(PNG_B): len(PNG_B)}
