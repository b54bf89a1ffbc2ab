"""Submitting with files on the real servers: as parts of a multipart body or as the ids of
the caller's uploads, checked against the offer's file inputs before anything is written; the
request keeps its own copy of each, its task carries them, and the same files again are the
same request, charged once."""

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from redis.asyncio import Redis

from libs.accounts import NewUser
from libs.contracts import TASKS_STREAM, TaskMessage
from libs.contracts.files import FileRef, input_file_id
from libs.streams import decode
from tests.files_support import encoded
from tests.integration.api.conftest import auth
from tests.integration.api.files_helpers import FilesApi, files_api, written
from tests.support import ServerUrls


@pytest.fixture
async def fa(
    servers: ServerUrls, db_pool: "asyncpg.Pool[Any]", tmp_path: Path
) -> AsyncIterator[FilesApi]:
    async with files_api(servers, db_pool, tmp_path, upload_max_bytes=50_000) as running:
        yield running


async def _tasks(redis: Redis, count: int) -> list[TaskMessage]:
    for _ in range(250):
        entries: Any = await redis.xrange(TASKS_STREAM)
        if len(entries) >= count:
            return [decode(TaskMessage, fields) for _, fields in entries]
        await asyncio.sleep(0.02)
    raise AssertionError(f"{count} tasks were never published")


async def _submit_multipart(
    fa: FilesApi, user: NewUser, files: dict[str, Any], data: dict[str, str], path: str
) -> httpx.Response:
    return await fa.client.post(path, files=files, data=data, headers=auth(user))


async def test_a_multipart_submission_writes_the_request_its_files_and_its_task(
    fa: FilesApi, alice: NewUser, db_pool: "asyncpg.Pool[Any]", redis_client: Redis
) -> None:
    image = encoded("PNG")
    sha = hashlib.sha256(image).hexdigest()
    r = await _submit_multipart(
        fa, alice, {"image": ("dot.png", image, "image/png")}, {"prompt": "a dot"},
        "/svc/img/describe",
    )  # fmt: skip
    assert r.status_code == 202, r.text
    request_id = r.json()["id"]
    copy = input_file_id(uuid.UUID(request_id), "image")

    row = await db_pool.fetchrow(
        "SELECT prompt, inputs FROM requests WHERE id = $1::uuid", request_id
    )
    assert row is not None
    assert row["prompt"] == "Describe: a dot"
    assert row["inputs"] == {"prompt": "a dot", "image": copy}
    files = await db_pool.fetch("SELECT * FROM files")
    assert len(files) == 1
    assert (files[0]["id"], files[0]["purpose"], files[0]["name"]) == (copy, "input", "image")
    assert (str(files[0]["request_id"]), files[0]["sha256"]) == (request_id, sha)
    assert (files[0]["filename"], files[0]["user_id"]) == ("dot.png", alice.id)
    assert await written(db_pool) == {"files": 1, "blobs": 1, "requests": 1}
    assert [p.read_bytes() for p in fa.objects()] == [image]

    (task,) = await _tasks(redis_client, 1)
    assert str(task.request_id) == request_id
    assert task.prompt == "Describe: a dot"
    assert task.files == {
        "image": FileRef(
            id=copy, sha256=sha, media_type="image/png", bytes=len(image), width=30, height=20
        )
    }

    view = (await fa.client.get(f"/svc/request/{request_id}", headers=auth(alice))).json()
    assert view["inputs"]["prompt"] == "a dot"
    assert view["inputs"]["image"] == {
        **task.files["image"].model_dump(),
        "url": f"/files/{copy}/content",
    }
    (listed,) = (await fa.client.get("/svc/requests", headers=auth(alice))).json()["items"]
    assert listed["inputs"] == view["inputs"]
    served = await fa.client.get(view["inputs"]["image"]["url"], headers=auth(alice))
    assert served.content == image
    kept = (await fa.client.get(f"/files/{copy}", headers=auth(alice))).json()
    assert kept["purpose"] == "input"
    assert (await fa.client.delete(f"/files/{copy}", headers=auth(alice))).status_code == 409


async def test_the_same_files_again_are_the_same_request_charged_once(
    fa: FilesApi, alice: NewUser, db_pool: "asyncpg.Pool[Any]", redis_client: Redis
) -> None:
    image = encoded("JPEG")
    parts = {"image": ("a.jpg", image, "image/jpeg")}
    first = await _submit_multipart(fa, alice, parts, {"prompt": "p"}, "/svc/img/describe")
    again = await _submit_multipart(fa, alice, parts, {"prompt": "p"}, "/svc/img/describe")
    upload = (await fa.upload(alice, image, content_type="image/jpeg")).json()
    by_id = await fa.client.post(
        "/svc/img/describe", json={"prompt": "p", "image": upload["id"]}, headers=auth(alice)
    )
    assert first.status_code == again.status_code == by_id.status_code == 202
    assert first.json()["id"] == again.json()["id"] == by_id.json()["id"]
    assert (first.json()["duplicate"], again.json()["duplicate"], by_id.json()["duplicate"]) == (
        False,
        True,
        True,
    )
    reserved = await db_pool.fetch("SELECT amount FROM credit_ledger WHERE kind = 'reserve'")
    assert [r["amount"] for r in reserved] == [3]
    assert await db_pool.fetchval("SELECT balance FROM users WHERE id = $1", alice.id) == 97
    # The request's copy, the upload; one blob, one object.
    assert await written(db_pool) == {"files": 2, "blobs": 1, "requests": 1}
    assert len(fa.objects()) == 1
    other = await _submit_multipart(fa, alice, parts, {"prompt": "q"}, "/svc/img/describe")
    assert other.json()["id"] != first.json()["id"]
    assert len(await _tasks(redis_client, 2)) == 2


async def test_a_submission_names_an_upload_by_its_id(
    fa: FilesApi, alice: NewUser, db_pool: "asyncpg.Pool[Any]", redis_client: Redis
) -> None:
    photo = encoded("JPEG", size=(40, 30))
    upload = (await fa.upload(alice, photo, content_type="image/jpeg")).json()
    r = await fa.client.post(
        "/svc/img/strict", json={"prompt": "x", "photo": upload["id"]}, headers=auth(alice)
    )
    assert r.status_code == 202, r.text
    (task,) = await _tasks(redis_client, 1)
    assert task.files is not None
    assert set(task.files) == {"photo"}
    assert task.files["photo"].sha256 == upload["sha256"]
    # Deleting the upload leaves the request its own copy.
    assert (
        await fa.client.delete(f"/files/{upload['id']}", headers=auth(alice))
    ).status_code == 204
    copy = task.files["photo"].id
    assert (await fa.client.get(f"/files/{copy}/content", headers=auth(alice))).content == photo
    assert await written(db_pool) == {"files": 1, "blobs": 1, "requests": 1}


async def test_refused_submissions_name_the_problem_and_write_nothing(
    fa: FilesApi, alice: NewUser, bob: NewUser, db_pool: "asyncpg.Pool[Any]"
) -> None:
    png, jpeg = encoded("PNG"), encoded("JPEG")
    bobs = (await fa.upload(bob, jpeg, content_type="image/jpeg")).json()["id"]
    alices_png = (await fa.upload(alice, png)).json()["id"]
    before = await written(db_pool)
    unknown = "file-" + "0" * 32
    cases: list[tuple[str, dict[str, Any], int, str, dict[str, Any]]] = [
        ("/svc/img/describe", {"json": {"prompt": "x"}}, 422, "missing files: image",
         {"missing": ["image"]}),
        ("/svc/img/describe", {"data": {"prompt": "x"}, "files": {"picture": ("a.png", png)}},
         422, "unknown files: picture", {"unknown": ["picture"]}),
        ("/svc/img/describe", {"json": {"prompt": "x", "image": bobs}}, 422,
         "not the id of one of your files: image", {"fields": ["image"]}),
        ("/svc/img/describe", {"json": {"prompt": "x", "image": unknown}}, 422,
         "not the id of one of your files: image", {"fields": ["image"]}),
        ("/svc/img/describe", {"json": {"prompt": "x", "image": 7}}, 422,
         "not the id of one of your files: image", {"fields": ["image"]}),
        ("/svc/img/describe",
         {"data": {"image": "x"}, "files": {"prompt": ("p.png", png, "image/png")}}, 422,
         "fields must be text, not files: prompt", {"not_strings": ["prompt"]}),
        ("/svc/demo/echo", {"data": {"text": "x"}, "files": {"image": ("a.png", png)}}, 422,
         "unknown files: image (this offer takes: none)", {"unknown": ["image"]}),
        ("/svc/demo/echo", {"json": {"text": "x", "image": alices_png}}, 422,
         "unknown fields: image", {"unknown": ["image"]}),
        ("/svc/img/strict", {"json": {"prompt": "x", "photo": alices_png}}, 422,
         "photo: the file is image/png; accepted: image/jpeg", {"fields": ["photo"]}),
        ("/svc/img/strict", {"data": {"prompt": "x"}, "files": {"photo": ("a.png", png)}},
         422, "photo: the file is image/png; accepted: image/jpeg", {"fields": ["photo"]}),
        ("/svc/img/strict",
         {"data": {"prompt": "x"}, "files": {"photo": ("a.jpg", jpeg, "image/png")}}, 422,
         "photo: declared as image/png, but its bytes are image/jpeg", {"fields": ["photo"]}),
        ("/svc/img/strict",
         {"data": {"prompt": "x"}, "files": {"photo": ("b.jpg", encoded("JPEG", (100, 100)))}},
         422, "the limit is 5,000 pixels", {"fields": ["photo"]}),
        ("/svc/img/strict",
         {"data": {"prompt": "x"}, "files": {"photo": ("c.jpg", b"\xff\xd8" + b"j" * 5000)}},
         422, "the most accepted is 4,000 bytes", {"fields": ["photo"], "limit": 4000}),
        ("/svc/img/describe",
         {"data": {"prompt": "x"}, "files": {"image": ("d.png", b"\x89PNG" + b"\x00" * 60_000)}},
         413, "the files add up to 60,004 bytes", {"limit": 50_000}),
    ]  # fmt: skip
    for path, body, status, says, extra in cases:
        r = await fa.client.post(path, headers=auth(alice), **body)
        assert r.status_code == status, (path, body.keys(), r.text)
        answer = r.json()
        assert says in answer["detail"], (says, answer)
        assert {k: answer.get(k) for k in extra} == extra, answer
        assert bobs not in r.text
    assert await written(db_pool) == before == {"files": 2, "blobs": 2, "requests": 0}
    assert len(fa.objects()) == 2
