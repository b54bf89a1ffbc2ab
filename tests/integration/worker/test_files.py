"""Files through the worker against real Redis and a blob store on disk: input files read by
handlers, file results stored and replaced by references, and the clear failures."""

import io
import uuid
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from prometheus_client import REGISTRY
from redis.asyncio import Redis

from libs.blobs import BlobStore, open_store, sha256_of
from libs.contracts import ResultMessage, TaskMessage
from libs.contracts.files import FileRef, input_file_id, result_file_id
from services.worker.handlers import build_registry
from services.worker.job import FileOutput, Job, JobContext
from services.worker.registry import HandlerRegistry
from tests.integration.worker.helpers import FAST, add_tasks, finals, running, wait_finals


def png(size: tuple[int, int] = (3, 2), colour: str = "red") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, "PNG")
    return out.getvalue()


def gradient() -> bytes:
    out = io.BytesIO()
    Image.linear_gradient("L").save(out, "PNG")
    return out.getvalue()


class Returns:
    """A handler that returns what it is given."""

    def __init__(self, *results: Any) -> None:
        self.results = list(results)

    async def execute(self, job: Job, ctx: JobContext) -> list[Any]:
        return list(self.results)


@pytest.fixture
def blobs(tmp_path: Path) -> BlobStore:
    return open_store(str(tmp_path / "blobs"))


def registry(**handlers: Any) -> HandlerRegistry:
    built = build_registry()
    for name, handler in handlers.items():
        built.register(f"test.{name}", handler)
    return built


def message(handler: str, *, step: int | None = None, **fields: Any) -> TaskMessage:
    return TaskMessage(
        request_id=uuid.uuid4(), attempt=1, handler=handler, prompt="hi", step=step, **fields
    )


async def run(
    redis: Redis,
    blobs: BlobStore,
    tasks: list[TaskMessage],
    built: HandlerRegistry,
    **settings: Any,
) -> dict[uuid.UUID, ResultMessage]:
    async with running(redis, FAST.model_copy(update=settings), registry=built, blobs=blobs):
        await add_tasks(redis, tasks)
        results = finals(await wait_finals(redis, len(tasks)))
    return {r.request_id: r for r in results}


def stored_bytes(handler: str, media: str) -> float:
    labels = {"handler": handler, "media": media}
    return REGISTRY.get_sample_value("relai_result_file_bytes_total", labels) or 0.0


async def test_file_results_are_stored_and_replaced_by_references(
    redis_client: Redis, blobs: BlobStore
) -> None:
    image = png()
    sound = b"RIFF....WAVEfmt "
    handler = Returns("a caption", FileOutput(image, "image/jpeg"), FileOutput(sound, "Audio/WAV"))
    single = message("test.files")
    in_a_deal = message("test.files", step=2)
    before = stored_bytes("test.files", "image"), stored_bytes("test.files", "audio")

    done = await run(redis_client, blobs, [single, in_a_deal], registry(files=handler))

    for task in (single, in_a_deal):
        result = done[task.request_id]
        assert (result.kind, result.error) == ("succeeded", None)
        assert result.results == [
            "a caption",
            FileRef(
                id=result_file_id(task.request_id, task.step, 1),
                sha256=sha256_of(image),
                media_type="image/png",  # what the bytes are, not what was claimed
                bytes=len(image),
                width=3,
                height=2,
            ).model_dump(),
            {
                "type": "file",
                "id": result_file_id(task.request_id, task.step, 2),
                "sha256": sha256_of(sound),
                "media_type": "audio/wav",
                "bytes": len(sound),
                "width": None,
                "height": None,
            },
        ]
    assert done[single.request_id].results != done[in_a_deal.request_id].results
    assert await blobs.get(sha256_of(image)) == image
    assert await blobs.get(sha256_of(sound)) == sound
    after = stored_bytes("test.files", "image"), stored_bytes("test.files", "audio")
    assert after == (before[0] + 2 * len(image), before[1] + 2 * len(sound))


@pytest.mark.parametrize(
    ("results", "error"),
    [
        (
            [FileOutput(b"not an image", "image/png")],
            "result 0 is not a valid image: the file is not an image of an accepted type",
        ),
        (
            ["text", FileOutput(gradient()[:-200], "image/png")],
            "result 1 is not a valid image: the image is damaged or truncated",
        ),
        (
            [FileOutput(b"<svg/>", "image/svg+xml")],
            "result 0 is not a valid image: the file is not an image",
        ),
        ([FileOutput(b"x" * 1001, "text/plain")], "result 0 is a file of 1,001 bytes; the most "),
        ([FileOutput(b"x", "no type")], "result 0 has no valid media type: 'no type'"),
        (
            [{"type": "file", "id": "file-" + "0" * 32, "sha256": "a" * 64}],
            "result 0 poses as a file reference",
        ),
    ],
)
async def test_a_file_result_that_fails_its_checks_fails_the_job(
    redis_client: Redis, blobs: BlobStore, results: list[Any], error: str
) -> None:
    task = message("test.bad")
    ok = FileOutput(png((5, 5)), "image/png")  # stored only if every file passes
    done = await run(
        redis_client,
        blobs,
        [task],
        registry(bad=Returns(*results, ok)),
        worker_max_result_bytes=1000,
    )
    result = done[task.request_id]
    assert (result.kind, result.results) == ("failed", None)
    assert result.error is not None
    assert result.error.startswith(error), result.error
    assert [b async for b in blobs.list()] == []


class Reads:
    """A handler that returns its input files' bytes as file results, and their names."""

    async def execute(self, job: Job, ctx: JobContext) -> list[Any]:
        results: list[Any] = []
        for name, file in sorted(job.files.items()):
            results += [f"{name}: {file.media_type} {file.width}x{file.height}"]
            results += [FileOutput(await file.read(), file.media_type)]
        return results


async def test_input_files_are_read_from_the_store(redis_client: Redis, blobs: BlobStore) -> None:
    source = png((8, 4), "white")
    stored = await blobs.put(source)
    rid = uuid.uuid4()
    ref = FileRef(
        id=input_file_id(rid, "photo"),
        sha256=stored.sha256,
        media_type="image/png",
        bytes=stored.size,
        width=8,
        height=4,
    )
    task = TaskMessage(
        request_id=rid, attempt=1, handler="test.reads", prompt="", files={"photo": ref}
    )

    done = await run(redis_client, blobs, [task], registry(reads=Reads()))

    result = done[rid]
    assert (result.kind, result.error) == ("succeeded", None)
    assert result.results == [
        "photo: image/png 8x4",
        {**ref.model_dump(), "id": result_file_id(rid, None, 1)},
    ]


async def test_a_missing_input_blob_fails_the_job_once_with_a_clear_error(
    redis_client: Redis, blobs: BlobStore
) -> None:
    rid = uuid.uuid4()
    ref = FileRef(id=input_file_id(rid, "image"), sha256="0" * 64, media_type="image/png", bytes=9)
    task = TaskMessage(
        request_id=rid,
        attempt=1,
        handler="test.reads",
        prompt="",
        files={"image": ref},
    )
    done = await run(redis_client, blobs, [task], registry(reads=Reads()))
    assert done[rid].kind == "failed"
    assert done[rid].error == f"input file 'image' ({ref.id}) is missing from the blob store"


async def test_text_results_are_unchanged(redis_client: Redis, blobs: BlobStore) -> None:
    values: list[Any] = ["text", {"type": "json", "a": 1}, [1, 2], None, 3.5]
    task = message("test.text")
    done = await run(redis_client, blobs, [task], registry(text=Returns(*values)))
    assert done[task.request_id].results == values


async def test_a_repeated_file_is_stored_once_under_one_id_per_place(
    redis_client: Redis, blobs: BlobStore
) -> None:
    task = message("image.draw", params={"width": 64, "height": 32})
    task = task.model_copy(update={"create_qty": 3})
    before = stored_bytes("image.draw", "image")
    done = await run(redis_client, blobs, [task], build_registry())
    results = done[task.request_id].results
    assert results is not None
    assert [r["id"] for r in results] == [
        result_file_id(task.request_id, None, i) for i in range(3)
    ]
    assert len({r["sha256"] for r in results}) == 1
    assert (results[0]["width"], results[0]["height"]) == (64, 32)
    assert stored_bytes("image.draw", "image") == before + results[0]["bytes"]
