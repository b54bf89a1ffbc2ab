"""An image round trip on the real processes, as a client makes it, on a directory and on S3:
upload a photo, have the demo catalog's ``image/grayscale`` turn it grey, watch the request end on
its WebSocket with the result as a link, and download the result: byte for byte what the handler
made of the photo. The same offer taken as a multipart submission, and ``image/draw`` making an
image of nothing but a prompt."""

import io
import os
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from PIL import Image
from websockets.asyncio.client import connect

from libs.blobs.store import sha256_of
from libs.catalog import apply_catalog, load_catalog_file
from libs.contracts.files import FileRef, result_file_id
from services.worker.handlers.images import TransformImage
from services.worker.job import FileOutput, InputFile, Job, JobContext
from tests.e2e.conftest import ROOT, Stack
from tests.files_support import encoded

pytestmark = pytest.mark.e2e


@pytest.fixture
def stack_env(stack_env: dict[str, str], blob_url: str) -> dict[str, str]:
    """Every process on the blob store of this run: a directory, or an S3 bucket (its
    ``AWS_*`` settings from the test's environment)."""
    aws = {name: value for name, value in os.environ.items() if name.startswith("AWS_")}
    return {**stack_env, **aws, "RELAI_BLOB_URL": blob_url}


@pytest.fixture
async def demo(stack: Stack, db_pool: "asyncpg.Pool[Any]") -> Stack:
    """The stack with the shipped demo catalog, as ``make run`` applies it."""
    async with db_pool.acquire() as conn:
        await apply_catalog(conn, load_catalog_file(ROOT / "catalog" / "demo.yaml"))
    return stack


async def _final_on_websocket(stack: Stack, request_id: str) -> dict[str, Any]:
    url = f"{stack.ws_url}/ws/requests/{request_id}"
    async with connect(url, additional_headers=stack.headers, open_timeout=10) as ws:
        async for raw in ws:
            state: dict[str, Any] = orjson.loads(raw)
            if state.get("status") in ("succeeded", "failed", "cancelled", "expired"):
                return state
    raise AssertionError("the WebSocket closed before the request ended")


async def _grey(photo: bytes) -> bytes:
    """What ``image.transform`` makes of ``photo`` with the demo offer's params."""

    async def read(sha256: str) -> bytes:
        return photo

    ref = FileRef(id="file-" + "0" * 32, sha256=sha256_of(photo), media_type="image/png", bytes=1)
    job = Job(
        request_id=uuid.uuid4(),
        attempt=1,
        prompt="grayscale",
        params={"op": "grayscale"},
        files={"image": InputFile.of("image", ref, read)},
    )
    (out,) = await TransformImage().execute(job, JobContext())
    assert isinstance(out, FileOutput)
    return out.data


async def test_an_uploaded_photo_comes_back_grey_as_a_link_on_the_websocket(
    demo: Stack, client: httpx.AsyncClient
) -> None:
    photo = encoded("JPEG", (64, 48), color="orange")
    uploaded = await client.post("/files", files={"file": ("cat.jpg", photo, "image/jpeg")})
    assert uploaded.status_code == 201, uploaded.text
    upload = uploaded.json()
    assert (upload["media_type"], upload["width"], upload["height"]) == ("image/jpeg", 64, 48)

    submitted = await client.post("/svc/image/grayscale", json={"image": upload["id"]})
    assert submitted.status_code == 202, submitted.text
    request_id = submitted.json()["id"]
    final = await _final_on_websocket(demo, request_id)

    assert final["status"] == "succeeded", final
    (result,) = final["results"]
    expected = await _grey(photo)
    file_id = result_file_id(uuid.UUID(request_id), None, 0)
    assert result["type"] == "file"
    assert (result["id"], result["url"]) == (file_id, f"/files/{file_id}/content")
    assert (result["media_type"], result["width"], result["height"]) == ("image/png", 64, 48)
    assert result["sha256"] == sha256_of(expected)

    download = await client.get(result["url"])
    assert download.status_code == 200
    assert download.headers["content-type"] == "image/png"
    assert download.content == expected
    assert Image.open(io.BytesIO(download.content)).mode in ("L", "LA")

    # The same result by polling, and through a signed URL that needs no key.
    polled = (await client.get(f"/svc/request/{request_id}")).json()
    assert polled["results"] == final["results"]
    signed = (await client.post(f"/files/{file_id}/url")).json()["url"]
    async with httpx.AsyncClient(base_url=demo.url) as anonymous:
        assert (await anonymous.get(signed)).content == expected
        assert (await anonymous.get(result["url"])).status_code == 401


async def test_a_multipart_submission_and_a_drawn_prompt(
    demo: Stack, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    photo = encoded("PNG", (40, 30), color="blue")
    submitted = await client.post(
        "/svc/image/grayscale", files={"image": ("sky.png", photo, "image/png")}
    )
    assert submitted.status_code == 202, submitted.text
    final = await _final_on_websocket(demo, submitted.json()["id"])
    assert final["status"] == "succeeded", final
    (result,) = final["results"]
    assert (await client.get(result["url"])).content == await _grey(photo)

    drawn = await client.post("/svc/image/draw", json={"text": "hello, files"})
    assert drawn.status_code == 202, drawn.text
    final = await _final_on_websocket(demo, drawn.json()["id"])
    assert final["status"] == "succeeded", final
    (picture,) = final["results"]
    content = (await client.get(picture["url"])).content
    assert sha256_of(content) == picture["sha256"]
    image = Image.open(io.BytesIO(content))
    assert (image.format, image.size) == ("PNG", (320, 120))
