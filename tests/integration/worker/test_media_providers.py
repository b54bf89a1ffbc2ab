"""The media handlers against the fake media provider's rendition of the documented wire
formats: what they send (JSON, multipart fields and files, base64 parts) and what they make of
the answers (images in base64, at URLs, as ``inlineData`` parts, as raw bytes)."""

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from libs.blobs import open_store, sha256_of
from libs.config import Integration
from libs.contracts import TaskMessage
from libs.contracts.files import FileRef, result_file_id
from libs.security.ssrf import UrlPolicy
from services.worker.config import with_integration
from services.worker.handlers import build_registry
from services.worker.job import FileOutput, HandlerError, InputFile, Job, JobContext
from services.worker.providers import ProviderHttp
from tests.fakes.media import EDITED, GENERATED, FakeMedia, Upload, b64, fake_media, png
from tests.fakes.provider import Reply
from tests.integration.worker.helpers import FAST, add_tasks, finals, running, wait_finals

KEY = "sk-test-media-key-0123456789"
SOURCE = png("white", (5, 5))
MASK = png("black", (5, 5))


@pytest.fixture
async def fake() -> AsyncIterator[FakeMedia]:
    async with fake_media() as media:
        yield media


@pytest.fixture
async def http() -> AsyncIterator[ProviderHttp]:
    client = ProviderHttp()
    yield client
    await client.aclose()


def inputs(files: dict[str, bytes]) -> dict[str, InputFile]:
    stored = {sha256_of(data): data for data in files.values()}

    async def read(sha256: str) -> bytes:
        return stored[sha256]

    return {
        name: InputFile.of(
            name,
            FileRef(id=f"file-{i:032x}", sha256=sha256_of(data), media_type="image/png", bytes=1),
            read,
        )
        for i, (name, data) in enumerate(files.items())
    }


async def run(
    http: ProviderHttp,
    handler: str,
    base_url: str,
    *,
    files: dict[str, bytes] | None = None,
    create_qty: int = 1,
    **params: Any,
) -> tuple[list[Any], JobContext]:
    """The job as the worker runs it, under an integration with the fake's URL and ``KEY``."""
    catalog = {"integration": "fake", "backoff_s": 0.01, "backoff_max_s": 0.05, **params}
    job = Job(
        request_id=uuid.uuid4(),
        attempt=1,
        prompt="hello",
        params=with_integration(
            catalog, catalog, {"fake": Integration(base_url=base_url, api_key=KEY)}
        ),
        create_qty=create_qty,
        files=inputs(files or {}),
    )
    ctx = JobContext()
    return await build_registry(http=http).get(handler).execute(job, ctx), ctx


# OpenAI images


async def test_openai_generations_in_base64(http: ProviderHttp, fake: FakeMedia) -> None:
    results, ctx = await run(
        http,
        "openai.images",
        f"{fake.url}/v1",
        create_qty=2,
        model="gpt-image-1",
        size="1024x1024",
        quality="high",
    )
    assert results == [FileOutput(GENERATED, "image/png")] * 2
    assert ctx.usage == {"input_tokens": 50, "output_tokens": 200}
    (call,) = fake.calls
    assert (call.method, call.path) == ("POST", "/v1/images/generations")
    assert call.headers["authorization"] == f"Bearer {KEY}"
    assert call.json == {
        "model": "gpt-image-1",
        "prompt": "hello",
        "n": 2,
        "size": "1024x1024",
        "quality": "high",
        "response_format": "b64_json",
    }


async def test_openai_generations_without_response_format_and_n_per_call(
    http: ProviderHttp, fake: FakeMedia
) -> None:
    results, _ = await run(
        http,
        "openai.images",
        f"{fake.url}/v1",
        create_qty=2,
        model="dall-e-3",
        response_format=None,
        max_n=1,
        body={"style": "vivid"},
    )
    assert len(results) == 2
    assert [c.json for c in fake.calls] == [
        {"model": "dall-e-3", "prompt": "hello", "n": 1, "style": "vivid"}
    ] * 2


async def test_openai_images_at_urls_are_fetched_without_the_key(
    http: ProviderHttp, fake: FakeMedia
) -> None:
    results, _ = await run(
        http,
        "openai.images",
        f"{fake.url}/v1",
        create_qty=2,
        model="dall-e-2",
        response_format="url",
    )
    assert results == [FileOutput(GENERATED, "image/png")] * 2
    post, *gets = fake.calls
    assert post.path == "/v1/images/generations"
    assert [(g.method, g.path) for g in gets] == [
        ("GET", "/files/img-0.png"),
        ("GET", "/files/img-1.png"),
    ]
    assert all("authorization" not in g.headers for g in gets)


async def test_an_image_url_the_ssrf_guard_refuses_is_not_fetched(fake: FakeMedia) -> None:
    fake.files_at = "http://169.254.169.254"
    guarded = ProviderHttp(policy=UrlPolicy.from_allow(["127.0.0.1"]))
    try:
        with pytest.raises(HandlerError, match="request to 169.254.169.254 refused"):
            await run(guarded, "openai.images", f"{fake.url}/v1", model="m", response_format="url")
    finally:
        await guarded.aclose()
    assert [c.method for c in fake.calls] == ["POST"]


async def test_openai_edits_send_the_image_and_mask_as_multipart(
    http: ProviderHttp, fake: FakeMedia
) -> None:
    results, ctx = await run(
        http,
        "openai.images",
        f"{fake.url}/v1",
        files={"image": SOURCE, "mask": MASK},
        model="gpt-image-1",
        size="512x512",
        response_format=None,
    )
    assert results == [FileOutput(EDITED, "image/png")]
    assert ctx.usage == {"input_tokens": 50, "output_tokens": 100}
    (call,) = fake.calls
    assert call.path == "/v1/images/edits"
    assert call.headers["content-type"].startswith("multipart/form-data")
    assert call.headers["authorization"] == f"Bearer {KEY}"
    assert call.form == {"model": "gpt-image-1", "prompt": "hello", "n": "1", "size": "512x512"}
    assert call.files == {
        "image": [Upload("image.png", "image/png", SOURCE)],
        "mask": [Upload("mask.png", "image/png", MASK)],
    }


async def test_openai_edits_of_several_images_send_image_array(
    http: ProviderHttp, fake: FakeMedia
) -> None:
    await run(
        http,
        "openai.images",
        f"{fake.url}/v1",
        files={"front": SOURCE, "back": MASK},
        model="gpt-image-1",
        mask="none",
    )
    (call,) = fake.calls
    assert call.files == {
        "image[]": [Upload("back.png", "image/png", MASK), Upload("front.png", "image/png", SOURCE)]
    }


async def test_openai_images_retry_a_429_and_fail_clearly_on_a_bad_answer(
    http: ProviderHttp, fake: FakeMedia
) -> None:
    fake.script(Reply.rate_limited(0.05))
    results, _ = await run(http, "openai.images", f"{fake.url}/v1", model="m")
    assert len(results) == 1
    assert len(fake.calls) == 2
    fake.script(Reply.error(200, {"data": [{"revised_prompt": "x"}]}))
    with pytest.raises(HandlerError, match=r"data\.0 has neither b64_json nor url"):
        await run(http, "openai.images", f"{fake.url}/v1", model="m")
    fake.script(Reply.error(200, {"data": [{"b64_json": "not base64!"}]}))
    with pytest.raises(HandlerError, match=r"data\.0\.b64_json is not base64"):
        await run(http, "openai.images", f"{fake.url}/v1", model="m")


# Gemini


async def test_gemini_images_send_inline_data_and_return_text_and_images(
    http: ProviderHttp, fake: FakeMedia
) -> None:
    results, ctx = await run(
        http,
        "gemini.images",
        fake.url,
        files={"image": SOURCE},
        create_qty=2,
        model="gemini-2.5-flash-image",
    )
    assert results == ["Here is your image.", FileOutput(EDITED, "image/png")] * 2
    assert ctx.usage == {"input_tokens": 24, "output_tokens": 2580}
    assert len(fake.calls) == 2
    call = fake.calls[0]
    assert call.path == "/v1beta/models/gemini-2.5-flash-image:generateContent"
    assert call.headers["x-goog-api-key"] == KEY
    assert call.json == {
        "contents": [
            {
                "role": "user",
                "parts": [
                    {"inlineData": {"mimeType": "image/png", "data": b64(SOURCE)}},
                    {"text": "hello"},
                ],
            }
        ],
        "generationConfig": {"responseModalities": ["TEXT", "IMAGE"]},
    }


async def test_gemini_generate_sends_input_files_and_keeps_to_text(
    http: ProviderHttp, fake: FakeMedia
) -> None:
    results, _ = await run(http, "gemini.generate", fake.url, files={"photo": SOURCE}, model="g")
    assert results == ["Here is your image."]
    (call,) = fake.calls
    assert call.json["contents"][0]["parts"][0] == {
        "inlineData": {"mimeType": "image/png", "data": b64(SOURCE)}
    }


async def test_gemini_images_without_parts_fail_with_the_reason(
    http: ProviderHttp, fake: FakeMedia
) -> None:
    fake.script(Reply.error(200, {"candidates": [{"finishReason": "IMAGE_SAFETY", "index": 0}]}))
    with pytest.raises(
        HandlerError, match=r"no image or text in the answer \(finishReason IMAGE_SAFETY\)"
    ):
        await run(http, "gemini.images", fake.url, model="g")
    with pytest.raises(HandlerError, match="gemini.images does not stream"):
        await run(http, "gemini.images", fake.url, model="g", stream=True)


# Self-hosted model servers (http.json)


async def test_a_server_answering_image_bytes_gets_the_input_in_base64(
    http: ProviderHttp, fake: FakeMedia
) -> None:
    request = {
        "image": "{file:image}",
        "url": "data:{media_type:image};base64,{file:image}",
        "prompt": "{prompt}",
        "scale": 2,
    }
    results, _ = await run(
        http, "http.json", fake.url, files={"image": SOURCE}, path="/upscale", request=request
    )
    assert results == [FileOutput(EDITED, "image/png")]
    (call,) = fake.calls
    assert call.headers["content-type"] == "application/json"
    assert call.json == {
        "image": b64(SOURCE),
        "url": f"data:image/png;base64,{b64(SOURCE)}",
        "prompt": "hello",
        "scale": 2,
    }


async def test_a_server_that_takes_multipart(http: ProviderHttp, fake: FakeMedia) -> None:
    results, _ = await run(
        http,
        "http.json",
        fake.url,
        files={"image": SOURCE, "mask": MASK},
        path="/remove-background",
        send_files="multipart",
        request={"prompt": "{prompt}", "strength": 0.5},
        file_fields={"image": "file"},
    )
    assert results == [FileOutput(EDITED, "image/png")]
    (call,) = fake.calls
    assert call.form == {"prompt": "hello", "strength": "0.5"}
    assert call.files == {
        "file": [Upload("image.png", "image/png", SOURCE)],
        "mask": [Upload("mask.png", "image/png", MASK)],
    }


async def test_a_server_answering_base64_in_json(http: ProviderHttp, fake: FakeMedia) -> None:
    results, _ = await run(
        http,
        "http.json",
        fake.url,
        path="/b64",
        result_path="output.image",
        result_base64=True,
        result_media_type="image/webp",
    )
    assert results == [FileOutput(EDITED, "image/png")]  # the data URL's type wins


async def test_a_file_the_job_lacks_is_named(http: ProviderHttp, fake: FakeMedia) -> None:
    with pytest.raises(HandlerError, match="request names the input file 'face', which"):
        await run(http, "http.json", fake.url, request={"face": "{file:face}"})
    with pytest.raises(HandlerError, match="multipart request must be an object"):
        await run(http, "http.json", fake.url, send_files="multipart", request=["{prompt}"])
    assert fake.calls == []


async def test_through_the_worker_an_edit_lands_in_the_store(
    redis_client: Redis, fake: FakeMedia, http: ProviderHttp, tmp_path: Path
) -> None:
    blobs = open_store(str(tmp_path))
    source = await blobs.put(SOURCE)
    rid = uuid.uuid4()
    ref = FileRef(
        id="file-" + "1" * 32, sha256=source.sha256, media_type="image/png", bytes=source.size
    )
    task = TaskMessage(
        request_id=rid,
        attempt=1,
        handler="openai.images",
        prompt="make it green",
        params={"base_url": f"{fake.url}/v1", "model": "gpt-image-1"},
        files={"image": ref},
    )
    async with running(redis_client, FAST, registry=build_registry(http=http), blobs=blobs):
        await add_tasks(redis_client, [task])
        (done,) = finals(await wait_finals(redis_client, 1))
    assert (done.kind, done.error, done.usage) == (
        "succeeded",
        None,
        {"input_tokens": 50, "output_tokens": 100},
    )
    assert done.results == [
        FileRef(
            id=result_file_id(rid, None, 0),
            sha256=sha256_of(EDITED),
            media_type="image/png",
            bytes=len(EDITED),
            width=3,
            height=4,
        ).model_dump()
    ]
    assert await blobs.get(sha256_of(EDITED)) == EDITED
    assert fake.calls[0].files["image"] == [Upload("image.png", "image/png", SOURCE)]
