"""The built-in image handlers: deterministic PNGs, each transform, and clear errors."""

import io
import uuid
from collections.abc import Mapping
from typing import Any

import pytest
from PIL import Image

from libs.blobs import sha256_of
from libs.contracts.files import FileRef
from services.worker.handlers.images import DrawImage, TransformImage
from services.worker.job import FileOutput, HandlerError, InputFile, Job, JobContext


def png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def decoded(output: Any) -> Image.Image:
    assert isinstance(output, FileOutput)
    assert output.media_type == "image/png"
    image = Image.open(io.BytesIO(output.data))
    assert image.format == "PNG"
    return image


def job(
    prompt: str = "hello world",
    *,
    files: Mapping[str, bytes] | None = None,
    create_qty: int = 1,
    **params: Any,
) -> Job:
    stored = {sha256_of(data): data for data in (files or {}).values()}

    async def read(sha256: str) -> bytes:
        try:
            return stored[sha256]
        except KeyError:
            raise FileNotFoundError(sha256) from None

    inputs = {
        name: InputFile.of(
            name,
            FileRef(id=f"file-{i:032x}", sha256=sha256_of(data), media_type="image/png", bytes=1),
            read,
        )
        for i, (name, data) in enumerate((files or {}).items())
    }
    return Job(
        request_id=uuid.uuid4(),
        attempt=1,
        prompt=prompt,
        params=params,
        create_qty=create_qty,
        files=inputs,
    )


async def test_draw_is_byte_identical_for_the_same_prompt_and_params() -> None:
    params: dict[str, Any] = {"width": 200, "height": 120, "background": "#102030", "color": "red"}
    first = await DrawImage().execute(job("a cat", **params), JobContext())
    again = await DrawImage().execute(job("a cat", **params), JobContext())
    other = await DrawImage().execute(job("a dog", **params), JobContext())
    assert first == again
    assert first != other
    image = decoded(first[0])
    assert image.size == (200, 120)
    assert image.mode == "RGB"
    assert image.getpixel((0, 0)) == (16, 32, 48)
    colours = {colour for _, colour in image.getcolors(maxcolors=100_000) or []}
    assert (255, 0, 0) in colours  # the text is drawn


async def test_draw_defaults_and_create_qty_repeats() -> None:
    results = await DrawImage().execute(job("x " * 500, create_qty=3), JobContext())
    assert len(results) == 3
    assert len({r.data for r in results}) == 1
    assert decoded(results[0]).size == (512, 512)


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"width": 0}, "width must be a whole number from 16 to 2048"),
        ({"height": 4096}, "height must be a whole number from 16 to 2048"),
        ({"width": "big"}, "width must be a whole number"),
        ({"width": True}, "width must be a whole number"),
        ({"font_size": 1000}, "font_size must be a whole number from 6 to 256"),
        ({"background": "nope"}, "background: unknown colour 'nope'"),
        ({"color": 7}, "color must be a colour name or #rrggbb"),
    ],
)
async def test_draw_refuses_bad_params(params: dict[str, Any], error: str) -> None:
    with pytest.raises(HandlerError, match=f"^invalid params: {error}"):
        await DrawImage().execute(job(**params), JobContext())


def two_pixels() -> Image.Image:
    """Red on the left, white on the right."""
    image = Image.new("RGB", (2, 1), "white")
    image.putpixel((0, 0), (255, 0, 0))
    return image


async def transform(op: str, image: Image.Image, **params: Any) -> Image.Image:
    (result,) = await TransformImage().execute(
        job(files={"image": png(image)}, op=op, **params), JobContext()
    )
    return decoded(result)


def alpha(image: Image.Image, xy: tuple[int, int]) -> int:
    pixel = image.getpixel(xy)
    assert isinstance(pixel, tuple)
    return int(pixel[3])


async def test_mirror_flip_and_rotate() -> None:
    mirrored = await transform("mirror", two_pixels())
    assert [mirrored.getpixel((x, 0)) for x in range(2)] == [(255, 255, 255), (255, 0, 0)]
    flipped = await transform("flip", two_pixels().transpose(Image.Transpose.ROTATE_90))
    assert flipped.size == (1, 2)
    rotated = await transform("rotate90", two_pixels())
    # A quarter turn clockwise: the left pixel goes to the top.
    assert rotated.size == (1, 2)
    assert [rotated.getpixel((0, y)) for y in range(2)] == [(255, 0, 0), (255, 255, 255)]
    upright = two_pixels().transpose(Image.Transpose.ROTATE_90)  # red at the bottom
    assert [flipped.getpixel((0, y)) for y in range(2)] == [
        upright.getpixel((0, 1)),
        upright.getpixel((0, 0)),
    ]


async def test_grayscale_thumbnail_and_remove_background() -> None:
    gray = await transform("grayscale", two_pixels())
    assert gray.mode == "L"
    assert gray.getpixel((1, 0)) == 255

    big = Image.new("RGB", (400, 200), "blue")
    assert (await transform("thumbnail", big, size=100)).size == (100, 50)
    assert (await transform("thumbnail", big)).size == (256, 128)
    assert (await transform("thumbnail", two_pixels(), size=100)).size == (2, 1)  # never up

    cut = await transform("remove_background", two_pixels())
    assert cut.mode == "RGBA"
    assert cut.getpixel((0, 0)) == (255, 0, 0, 255)
    assert alpha(cut, (1, 0)) == 0
    light = Image.new("RGB", (1, 1), (200, 200, 200))
    assert alpha(await transform("remove_background", light), (0, 0)) == 255
    assert alpha(await transform("remove_background", light, threshold=200), (0, 0)) == 0


async def test_transform_is_deterministic_and_reads_the_named_input() -> None:
    source = png(Image.new("RGB", (30, 20), "green"))
    other = png(Image.new("RGB", (10, 10), "red"))
    params: dict[str, Any] = {"op": "grayscale", "input": "photo"}
    first = await TransformImage().execute(
        job(files={"photo": source, "image": other}, **params), JobContext()
    )
    again = await TransformImage().execute(
        job(files={"photo": source, "image": other}, **params), JobContext()
    )
    assert first == again
    assert decoded(first[0]).size == (30, 20)


async def test_a_palette_gif_with_transparency_keeps_it() -> None:
    gif = Image.new("P", (2, 2), 0)
    gif.putpalette([255, 255, 255, 0, 0, 0])
    out = io.BytesIO()
    gif.save(out, "GIF", transparency=0)
    (result,) = await TransformImage().execute(
        job(files={"image": out.getvalue()}, op="mirror"), JobContext()
    )
    assert decoded(result).mode == "RGBA"


@pytest.mark.parametrize(
    ("params", "files", "error"),
    [
        ({"op": "blur"}, {"image": b""}, "invalid params: op must be one of flip, grayscale, "),
        ({}, {"image": b""}, "invalid params: op must be one of"),
        ({"op": "thumbnail", "size": 0}, {"image": b""}, "size must be a whole number from 1"),
        ({"op": "remove_background", "threshold": 300}, {}, "threshold must be a whole number"),
        ({"op": "flip", "input": 3}, {}, "invalid params: input must be the name"),
        ({"op": "flip"}, {}, r"no input file 'image' \(this job has: none\)"),
        ({"op": "flip", "input": "x"}, {"image": b"1"}, r"no input file 'x' \(.*'image'\)"),
        ({"op": "flip"}, {"image": b"not an image"}, "input file 'image' is not a usable image"),
    ],
)
async def test_transform_refuses_bad_params_and_inputs(
    params: dict[str, Any], files: dict[str, bytes], error: str
) -> None:
    with pytest.raises(HandlerError, match=error):
        await TransformImage().execute(job(files=files, **params), JobContext())


async def test_a_missing_input_blob_is_a_clear_handler_error() -> None:
    present = job(files={"image": png(two_pixels())}, op="flip")
    ref = present.files["image"]

    async def gone(sha256: str) -> bytes:
        raise FileNotFoundError(sha256)

    missing = Job(
        request_id=present.request_id,
        attempt=1,
        prompt="",
        params=present.params,
        files={"image": InputFile.of("image", FileRef.model_validate(_ref(ref)), gone)},
    )
    with pytest.raises(HandlerError, match=r"^input file 'image' \(file-0+\) is missing from"):
        await TransformImage().execute(missing, JobContext())


def _ref(file: InputFile) -> dict[str, Any]:
    return {"id": file.id, "sha256": file.sha256, "media_type": file.media_type, "bytes": 1}
