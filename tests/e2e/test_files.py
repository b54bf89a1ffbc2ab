"""Files across the real processes (``relai-api --workers 2``, the workers): an image uploaded
and submitted (as a part, and by its upload's id) reaches a worker's task and the request ends;
its bytes are served back by every API process, and so is a signed URL one of them made."""

import asyncio
import hashlib
import uuid
from typing import Any

import asyncpg
import httpx
import pytest

from libs.catalog import apply_catalog
from libs.contracts.files import input_file_id
from tests.e2e.conftest import Stack
from tests.files_support import FILES_CATALOG, encoded

pytestmark = pytest.mark.e2e


async def _final(client: httpx.AsyncClient, request_id: str) -> dict[str, Any]:
    for _ in range(300):
        view: dict[str, Any] = (await client.get(f"/svc/request/{request_id}")).json()
        if view["status"] in ("succeeded", "failed"):
            return view
        await asyncio.sleep(0.05)
    raise AssertionError(f"request {request_id} never ended")


async def test_an_image_goes_in_and_comes_back_out(
    stack: Stack, client: httpx.AsyncClient, db_pool: "asyncpg.Pool[Any]"
) -> None:
    async with db_pool.acquire() as conn:
        await apply_catalog(conn, FILES_CATALOG, prune=False)
    image = encoded("PNG", size=(64, 48))
    sha = hashlib.sha256(image).hexdigest()

    submitted = await client.post(
        "/svc/img/describe",
        data={"prompt": "a red square"},
        files={"image": ("red.png", image, "image/png")},
    )
    assert submitted.status_code == 202, submitted.text
    request_id = submitted.json()["id"]
    view = await _final(client, request_id)
    # echo.text answers with its prompt; a handler that reads files gets them on its task.
    assert (view["status"], view["results"]) == ("succeeded", ["Describe: a red square"])
    copy = input_file_id(uuid.UUID(request_id), "image")
    assert view["inputs"]["image"]["id"] == copy
    assert view["inputs"]["image"]["sha256"] == sha
    assert (view["inputs"]["image"]["width"], view["inputs"]["image"]["height"]) == (64, 48)

    upload = await client.post("/files", files={"file": ("again.png", image, "image/png")})
    assert upload.status_code == 201, upload.text
    again = await client.post(
        "/svc/img/describe", json={"prompt": "a red square", "image": upload.json()["id"]}
    )
    assert (again.json()["id"], again.json()["duplicate"]) == (request_id, True)

    signed = (await client.post(f"/files/{copy}/url")).json()["url"]
    # New connections, so that both API processes answer: each serves the owner, and each
    # honours a URL either of them signed.
    for _ in range(6):
        async with httpx.AsyncClient(base_url=stack.url, timeout=10) as anyone:
            served = await anyone.get(signed)
            assert served.status_code == 200, served.text
            assert served.content == image
            owned = await anyone.get(view["inputs"]["image"]["url"], headers=stack.headers)
            assert owned.content == image
            assert owned.headers["etag"] == f'"{sha}"'
    assert await db_pool.fetchval("SELECT count(*) FROM blobs") == 1
    assert await db_pool.fetchval("SELECT count(*) FROM files") == 2
