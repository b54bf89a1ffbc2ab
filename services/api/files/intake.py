"""Files coming in: an upload's or a submission's file part read within its limit and checked
from its bytes (the real type, the pixels, a whole image), and the ids of the caller's files
that a JSON submission names. Nothing here writes: a file is stored only once every check of
its call has passed."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Mapping
from concurrent.futures import Executor
from dataclasses import dataclass

from starlette.datastructures import UploadFile

from libs.blobs import ImageInfo, NotAnImage, inspect_image, sha256_of
from libs.blobs.images import MAX_PIXELS
from libs.catalog.file_inputs import FileInputSpec
from libs.contracts.files import IMAGE_TYPES, parse_file_id
from libs.db import PgPool
from libs.db.text import text_problem
from libs.files import uploads
from services.api.errors import InvalidInputs, TooLarge
from services.api.submission import SubmittedFile

FILENAME_MAX = 255
_UNSAFE_NAME = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_UNDECLARED = frozenset({"", "application/octet-stream"})
"""A part's ``Content-Type`` that names no type: the bytes alone say what the file is."""
_SPELLINGS = {"image/jpg": "image/jpeg", "image/pjpeg": "image/jpeg", "image/x-png": "image/png"}


@dataclass(frozen=True, slots=True)
class CheckedImage:
    data: bytes
    sha256: str
    info: ImageInfo


def clean_filename(value: str | None) -> str | None:
    """A part's filename as kept: its last path component, no control characters, at most
    ``FILENAME_MAX`` characters; None when nothing is left."""
    if not value:
        return None
    name = _UNSAFE_NAME.sub("", value.replace("\\", "/").rsplit("/", 1)[-1]).strip()
    if not name or text_problem(name) is not None:
        return None
    return name[:FILENAME_MAX]


async def read_part(part: UploadFile, *, limit: int, name: str) -> bytes:
    """The bytes of the file part ``name``, refused (413) past ``limit`` before they are read
    (the parser spooled the part to disk as it arrived, within the body's limit)."""
    size = part.size
    if size is None or size > limit:
        raise TooLarge(too_large(name, size, limit), limit=limit)
    data = await part.read()
    if len(data) > limit:  # pragma: no cover - the part's size said otherwise
        raise TooLarge(too_large(name, len(data), limit), limit=limit)
    return data


def too_large(name: str, size: int | None, limit: int) -> str:
    what = f"{size:,} bytes" if size is not None else "larger than allowed"
    return f"{name}: the file is {what}; the most accepted is {limit:,} bytes"


def _check(data: bytes, accept: tuple[str, ...], max_pixels: int) -> CheckedImage:
    info = inspect_image(data, accept=accept, max_pixels=max_pixels)
    return CheckedImage(data, sha256_of(data), info)


async def check_image(
    data: bytes,
    *,
    name: str,
    decoders: Executor,
    accept: tuple[str, ...] = IMAGE_TYPES,
    max_pixels: int = MAX_PIXELS,
) -> CheckedImage:
    """``data`` identified and bounded from its bytes, off the event loop on ``decoders``
    (a bounded pool: decodes beyond its size wait); a 422 naming ``name`` and the problem when
    it is not an accepted, whole image."""
    loop = asyncio.get_running_loop()
    try:
        return await loop.run_in_executor(decoders, _check, data, accept, max_pixels)
    except NotAnImage as exc:
        raise InvalidInputs(f"{name}: {exc}", fields=[name]) from None


def declared_type(part: UploadFile) -> str:
    """The media type a part declares (its ``Content-Type``), bare and lower case."""
    declared = (part.content_type or "").split(";", 1)[0].strip().lower()
    return _SPELLINGS.get(declared, declared)


def check_declared(part: UploadFile, image: CheckedImage, *, name: str) -> None:
    """A part that declares a type other than its bytes' is refused (a 422 naming both): the
    client is mistaken or means to pass one thing off as another. A part that declares none
    (or ``application/octet-stream``) is what its bytes are."""
    declared = declared_type(part)
    if declared not in _UNDECLARED and declared != image.info.media_type:
        raise InvalidInputs(
            f"{name}: declared as {declared[:100]}, but its bytes are {image.info.media_type}",
            fields=[name],
        )


async def checked_part(
    part: UploadFile, name: str, spec: FileInputSpec, *, decoders: Executor
) -> SubmittedFile:
    """A submission's file part for the file input ``name``, held to ``spec``."""
    if part.size is not None and part.size > spec.max_bytes:
        raise InvalidInputs(
            too_large(name, part.size, spec.max_bytes), fields=[name], limit=spec.max_bytes
        )
    data = await part.read()
    if len(data) > spec.max_bytes:  # pragma: no cover - the part's size said otherwise
        raise InvalidInputs(
            too_large(name, len(data), spec.max_bytes), fields=[name], limit=spec.max_bytes
        )
    image = await check_image(
        data, name=name, decoders=decoders, accept=tuple(spec.types), max_pixels=spec.max_pixels
    )
    check_declared(part, image, name=name)
    return SubmittedFile(
        name=name,
        sha256=image.sha256,
        media_type=image.info.media_type,
        size=len(data),
        width=image.info.width,
        height=image.info.height,
        filename=clean_filename(part.filename),
        data=data,
    )


def not_yours(names: list[str]) -> InvalidInputs:
    """The same answer for an unknown id and another user's: nothing tells them apart."""
    return InvalidInputs("not the id of one of your files: " + ", ".join(names), fields=names)


async def referenced(
    pool: PgPool, user_id: uuid.UUID, ids: Mapping[str, object], files: Mapping[str, FileInputSpec]
) -> list[SubmittedFile]:
    """The caller's files that a submission names (file input name → file id), each held to its
    input's spec; a 422 naming the inputs whose value is not the id of one of their live files,
    or whose file the input does not accept."""
    bad = sorted(name for name, value in ids.items() if not _file_id(value))
    wanted = [str(value) for value in ids.values() if _file_id(value)]
    rows = await uploads.get_user_files(pool, wanted, user_id)
    bad += sorted(name for name, value in ids.items() if _file_id(value) and value not in rows)
    if bad:
        raise not_yours(bad)
    checked = []
    for name, value in ids.items():
        row, spec = rows[str(value)], files[name]
        problem = _unaccepted(row["media_type"], row["bytes"], row["width"], row["height"], spec)
        if problem:
            raise InvalidInputs(f"{name}: {problem}", fields=[name])
        checked.append(
            SubmittedFile(
                name=name,
                sha256=row["sha256"],
                media_type=row["media_type"],
                size=row["bytes"],
                width=row["width"],
                height=row["height"],
                filename=row["filename"],
            )
        )
    return checked


def _file_id(value: object) -> bool:
    return isinstance(value, str) and parse_file_id(value) is not None


def _unaccepted(
    media_type: str, size: int, width: int | None, height: int | None, spec: FileInputSpec
) -> str | None:
    if media_type not in spec.types:
        return f"the file is {media_type}; accepted: {', '.join(spec.types)}"
    if size > spec.max_bytes:
        return f"the file is {size:,} bytes; the most accepted is {spec.max_bytes:,} bytes"
    if width is not None and height is not None and width * height > spec.max_pixels:
        return (
            f"the image is {width}×{height} pixels ({width * height:,}); "
            f"the limit is {spec.max_pixels:,} pixels"
        )
    return None
