"""Files to and from providers: input files as base64 or multipart uploads, file results from
base64 (a plain string or a ``data:`` URL) or fetched from a URL the provider gives."""

import base64
import binascii
import mimetypes
import re
from typing import Any

from services.worker.job import FileOutput, Job
from services.worker.providers.errors import PermanentError, TransientError
from services.worker.providers.http import ProviderHttp, Upload, media_type_of, send
from services.worker.providers.params import ProviderParams
from services.worker.providers.retry import with_retries

_DATA_URL = re.compile(r"data:([\w.+-]+/[\w.+-]+)?(?:;[^,;]*)*;base64,", re.ASCII)
_EXTENSIONS = {
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/webp": ".webp",
    "image/gif": ".gif",
}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def from_base64(value: Any, where: str, media_type: str) -> FileOutput:
    """The file in ``value``: base64, or a ``data:<type>;base64,`` URL (whose type wins over
    ``media_type``). A clear ``PermanentError`` naming ``where`` when it is neither."""
    if not isinstance(value, str) or not value:
        raise PermanentError(f"unexpected answer from the provider: {where} is not base64")
    if match := _DATA_URL.match(value):
        media_type = match.group(1) or media_type
        value = value[match.end() :]
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise PermanentError(
            f"unexpected answer from the provider: {where} is not base64"
        ) from None
    return FileOutput(data, media_type)


async def read_files(job: Job) -> dict[str, bytes]:
    """Every input file's bytes, by name."""
    return {name: await file.read() for name, file in sorted(job.files.items())}


def upload(field: str, name: str, data: bytes, media_type: str) -> Upload:
    """A multipart file field for the input ``name``, its filename given the extension of its
    type (some servers judge a file by it)."""
    extension = _EXTENSIONS.get(media_type) or mimetypes.guess_extension(media_type) or ""
    return field, (f"{name}{extension}", data, media_type)


async def fetch(
    http: ProviderHttp, handler: str, url: Any, params: ProviderParams, media_type: str
) -> FileOutput:
    """The file at ``url`` (given by the provider's answer), fetched through the providers'
    client (the SSRF guard applies), with no key, retried on transient errors. A fetch that
    still fails fails the job rather than the provider call, which would run (and be paid for)
    again. The answer's type is kept when it is of the kind of ``media_type`` (an image for
    an image, say); else ``media_type`` is."""
    if not isinstance(url, str) or not url.startswith(("https://", "http://")):
        raise PermanentError(f"unexpected answer from the provider: {url!r} is not a URL")

    async def get() -> FileOutput:
        response = await send(http, "GET", url, headers={}, timeout=params.timeout)
        found = media_type_of(response)
        same_kind = found.partition("/")[0] == media_type.partition("/")[0] and "/" in found
        return FileOutput(response.content, found if same_kind else media_type)

    try:
        return await with_retries(handler, params, get)
    except TransientError as exc:
        raise PermanentError(f"the provider's file could not be fetched: {exc}") from exc
