"""A job's file results: each ``FileOutput`` a handler returned is checked, stored in the blob
store and replaced by its file reference before the results are written, so that the results
message carries references only.

The reference's id is ``result_file_id(request_id, step, index)``, ``index`` the file's place in
the results: every attempt of a job names its files alike. Images are decoded (off the event
loop) and their real type wins over the one the handler claimed; other media types are stored as
given. A job whose results hold no file pays one pass over its results (``has_files``).
"""

import asyncio
import re
from dataclasses import dataclass

from libs.blobs import BlobStore, NotAnImage, StoredBlob, inspect_image
from libs.blobs.images import MAX_PIXELS
from libs.contracts import TaskMessage
from libs.contracts.files import FileRef, result_file_id
from services.worker.job import FileOutput, HandlerError
from services.worker.metrics import RESULT_FILE_BYTES

_MEDIA_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*")
_MEDIA_LABELS = frozenset({"image", "audio", "video", "application", "text"})


def has_files(results: list[object]) -> bool:
    """Whether any result is a file, or a dict that poses as a file reference."""
    for result in results:
        if isinstance(result, FileOutput) or (
            isinstance(result, dict) and result.get("type") == "file"
        ):
            return True
    return False


@dataclass(frozen=True, slots=True)
class _Checked:
    data: bytes
    media_type: str
    width: int | None = None
    height: int | None = None


class FileResults:
    """Stores the file results of jobs in ``blobs`` (none: a job that returns a file fails)."""

    def __init__(self, blobs: BlobStore | None, *, max_bytes: int) -> None:
        self._blobs = blobs
        self._max_bytes = max_bytes

    async def store(self, task: TaskMessage, results: list[object]) -> list[object]:
        """``results`` with each ``FileOutput`` stored and replaced by its reference (a dict).
        ``HandlerError`` names the first result that cannot be: too large, not the image it
        claims to be, of no valid media type, or a dict posing as a file reference (which only
        the worker writes). Nothing is stored unless every file passed its checks; the same
        ``FileOutput`` repeated (``create_qty`` copies) is checked and stored once."""
        checked = await self._check_all(results)
        if not checked:
            return results
        puts = await self._put(task, {id(file): file for _, file in checked})
        stored = list(results)
        for index, file in checked:
            put = puts[id(file)]
            if isinstance(put, Exception):
                raise HandlerError(
                    f"result {index} could not be stored: {type(put).__name__}: {put}"
                )
            stored[index] = FileRef(
                id=result_file_id(task.request_id, task.step, index),
                sha256=put.sha256,
                media_type=file.media_type,
                bytes=put.size,
                width=file.width,
                height=file.height,
            ).model_dump()
        return stored

    async def _check_all(self, results: list[object]) -> list[tuple[int, _Checked]]:
        checked: list[tuple[int, _Checked]] = []
        seen: dict[int, _Checked] = {}
        for index, result in enumerate(results):
            if isinstance(result, FileOutput):
                if (file := seen.get(id(result))) is None:
                    file = seen[id(result)] = await self._check(index, result)
                checked.append((index, file))
            elif isinstance(result, dict) and result.get("type") == "file":
                raise HandlerError(
                    f"result {index} poses as a file reference; "
                    "a handler returns a file as FileOutput(data, media_type)"
                )
        return checked

    async def _put(
        self, task: TaskMessage, files: dict[int, _Checked]
    ) -> dict[int, StoredBlob | Exception]:
        """Each file put in the store at once: what was stored, or why not, by key."""
        if self._blobs is None:
            raise HandlerError("this worker has no blob store to keep file results in")
        blobs = self._blobs
        keys = list(files)
        puts = await asyncio.gather(
            *(blobs.put(files[k].data) for k in keys), return_exceptions=True
        )
        done: dict[int, StoredBlob | Exception] = {}
        for key, put in zip(keys, puts, strict=True):
            if isinstance(put, BaseException) and not isinstance(put, Exception):
                raise put
            if isinstance(put, StoredBlob):
                label = _media_label(files[key].media_type)
                RESULT_FILE_BYTES.labels(task.handler, label).inc(put.size)
            done[key] = put
        return done

    async def _check(self, index: int, output: FileOutput) -> _Checked:
        data = output.data
        if not isinstance(data, bytes):
            if not isinstance(data, bytearray | memoryview):
                raise HandlerError(f"result {index} is a file whose data is not bytes")
            data = bytes(data)
        if len(data) > self._max_bytes:
            raise HandlerError(
                f"result {index} is a file of {len(data):,} bytes; the most a file result may "
                f"have is {self._max_bytes:,} (RELAI_WORKER_MAX_RESULT_BYTES)"
            )
        claimed = output.media_type.split(";", 1)[0].strip().lower()
        if not _MEDIA_TYPE.fullmatch(claimed):
            raise HandlerError(f"result {index} has no valid media type: {output.media_type!r}")
        if not claimed.startswith("image/"):
            return _Checked(data, claimed)
        try:
            info = await asyncio.to_thread(inspect_image, data, max_pixels=MAX_PIXELS)
        except NotAnImage as exc:
            raise HandlerError(f"result {index} is not a valid image: {exc}") from None
        return _Checked(data, info.media_type, info.width, info.height)


def _media_label(media_type: str) -> str:
    top = media_type.split("/", 1)[0]
    return top if top in _MEDIA_LABELS else "other"
