"""Built-in image handlers that need no provider, for demos and tests: ``image.draw`` renders
the prompt as a PNG, ``image.transform`` applies a simple operation to an input image. Both are
deterministic (the same prompt, input and params give byte-identical PNGs with one Pillow) and
do their pixel work off the event loop; ``create_qty`` repeats the one image, as the echo
handlers repeat their text."""

import asyncio
import io
from collections.abc import Callable, Mapping
from typing import Any

from PIL import Image, ImageChops, ImageColor, ImageDraw, ImageFont

from libs.blobs import NotAnImage, inspect_image
from services.worker.job import FileOutput, HandlerError, Job, JobContext

PNG = "image/png"
_SIDE = (16, 2048)
_MARGIN = 8


class DrawImage:
    """``image.draw``: the prompt as text on a plain image, PNG. Params: ``width`` and
    ``height`` (16 to 2048, default 512), ``background`` (default ``white``) and ``color``
    (default ``black``) as CSS-like colour names or ``#rrggbb``, ``font_size`` (6 to 256,
    default 32). Words are wrapped to the width; what does not fit the height is cut."""

    async def execute(self, job: Job, ctx: JobContext) -> list[Any]:
        params = job.params
        width = _int(params, "width", 512, *_SIDE)
        height = _int(params, "height", 512, *_SIDE)
        font_size = _int(params, "font_size", 32, 6, 256)
        background = _color(params, "background", "white")
        color = _color(params, "color", "black")
        png = await asyncio.to_thread(
            _draw, job.prompt, (width, height), background, color, font_size
        )
        return [FileOutput(png, PNG)] * job.create_qty


class TransformImage:
    """``image.transform``: the input image named by the param ``input`` (default ``image``)
    with the param ``op`` applied, as PNG:

    - ``grayscale``; ``flip`` (upside down); ``mirror`` (left to right); ``rotate90`` (a
      quarter turn clockwise);
    - ``thumbnail``: scaled down (never up), keeping its proportions, to fit ``size`` × ``size``
      pixels (``size`` 1 to 4096, default 256);
    - ``remove_background``: a demo stand-in for real background removal, not one: every
      near-white pixel (red, green and blue all at least ``threshold``, 0 to 255, default 240)
      becomes transparent.
    """

    async def execute(self, job: Job, ctx: JobContext) -> list[Any]:
        params = job.params
        name = params.get("input", "image")
        if not isinstance(name, str):
            raise HandlerError("invalid params: input must be the name of an input file")
        op = params.get("op")
        if op not in _OPS:
            raise HandlerError(f"invalid params: op must be one of {', '.join(sorted(_OPS))}")
        options = {
            "size": _int(params, "size", 256, 1, 4096),
            "threshold": _int(params, "threshold", 240, 0, 255),
        }
        source = job.files.get(name)
        if source is None:
            have = ", ".join(repr(n) for n in sorted(job.files)) or "none"
            raise HandlerError(f"no input file {name!r} (this job has: {have})")
        data = await source.read()
        png = await asyncio.to_thread(_transform, data, name, _OPS[op], options)
        return [FileOutput(png, PNG)] * job.create_qty


def _draw(
    text: str,
    size: tuple[int, int],
    background: tuple[int, ...],
    color: tuple[int, ...],
    font_size: int,
) -> bytes:
    image = Image.new("RGB", size, background[:3])
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=font_size)
    lines = _wrap(text, lambda line: draw.textlength(line, font=font), size[0] - 2 * _MARGIN)
    line_height = int(font_size * 1.25)
    fitting = max(1, (size[1] - 2 * _MARGIN) // line_height)
    lines = lines[:fitting]
    top = (size[1] - line_height * len(lines)) // 2
    for i, line in enumerate(lines):
        left = (size[0] - draw.textlength(line, font=font)) / 2
        draw.text((left, top + i * line_height), line, fill=color[:3], font=font)
    return _png(image)


def _wrap(text: str, length: Callable[[str], float], width: int) -> list[str]:
    """``text`` in lines no longer than ``width`` (a word longer than that gets its own line)."""
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        line = ""
        for word in paragraph.split():
            candidate = f"{line} {word}" if line else word
            if line and length(candidate) > width:
                lines.append(line)
                line = word
            else:
                line = candidate
        lines.append(line)
    return lines


Op = Callable[[Image.Image, Mapping[str, int]], Image.Image]


def _grayscale(image: Image.Image, options: Mapping[str, int]) -> Image.Image:
    return image.convert("LA" if "A" in image.mode else "L")


def _thumbnail(image: Image.Image, options: Mapping[str, int]) -> Image.Image:
    image = image.copy()
    image.thumbnail((options["size"], options["size"]), Image.Resampling.LANCZOS)
    return image


def _remove_background(image: Image.Image, options: Mapping[str, int]) -> Image.Image:
    image = image.convert("RGBA")
    threshold = options["threshold"]
    red, green, blue, alpha = image.split()
    near_white = [band.point(lambda v: 255 if v >= threshold else 0) for band in (red, green, blue)]
    mask = ImageChops.multiply(ImageChops.multiply(near_white[0], near_white[1]), near_white[2])
    image.putalpha(ImageChops.darker(alpha, ImageChops.invert(mask)))
    return image


def _transposed(method: Image.Transpose) -> Op:
    return lambda image, options: image.transpose(method)


_OPS: dict[str, Op] = {
    "grayscale": _grayscale,
    "flip": _transposed(Image.Transpose.FLIP_TOP_BOTTOM),
    "mirror": _transposed(Image.Transpose.FLIP_LEFT_RIGHT),
    "rotate90": _transposed(Image.Transpose.ROTATE_270),
    "thumbnail": _thumbnail,
    "remove_background": _remove_background,
}


def _transform(data: bytes, name: str, op: Op, options: Mapping[str, int]) -> bytes:
    try:
        inspect_image(data)  # type, pixel bound and a full decode, before anything else
    except NotAnImage as exc:
        raise HandlerError(f"input file {name!r} is not a usable image: {exc}") from None
    with Image.open(io.BytesIO(data)) as opened:
        image = (
            opened.convert("RGBA" if opened.has_transparency_data else "RGB")
            if opened.mode not in ("L", "LA", "RGB", "RGBA")
            else opened.copy()
        )
    return _png(op(image, options))


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def _int(params: Mapping[str, Any], key: str, default: int, low: int, high: int) -> int:
    value = params.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise HandlerError(f"invalid params: {key} must be a whole number from {low} to {high}")
    return value


def _color(params: Mapping[str, Any], key: str, default: str) -> tuple[int, ...]:
    value = params.get(key, default)
    if not isinstance(value, str) or len(value) > 32:
        raise HandlerError(f"invalid params: {key} must be a colour name or #rrggbb")
    try:
        return ImageColor.getrgb(value)
    except ValueError:
        raise HandlerError(f"invalid params: {key}: unknown colour {value!r}") from None
