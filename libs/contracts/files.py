"""Files on the wire: the ids of files and the reference a request, a task or a result holds in
place of a file's bytes (which live in the blob store, ``libs.blobs``, under their sha256)."""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

FILE_ID_PREFIX = "file-"

IMAGE_TYPES = ("image/png", "image/jpeg", "image/webp", "image/gif")
"""The media types an offer's file input may accept; each is recognised from the bytes."""

SHA256_PATTERN = r"^[0-9a-f]{64}$"

_NAMESPACE = uuid.UUID("5f0c8a2e-6a4b-4c61-9d0e-2b7f2f3f1a10")


def file_id(value: uuid.UUID) -> str:
    """A file's public id: ``file-<32 hex>``."""
    return f"{FILE_ID_PREFIX}{value.hex}"


def parse_file_id(value: str) -> uuid.UUID | None:
    """The uuid of a ``file-<32 hex>`` id; None for anything else."""
    if not value.startswith(FILE_ID_PREFIX) or len(value) != len(FILE_ID_PREFIX) + 32:
        return None
    try:
        return uuid.UUID(hex=value[len(FILE_ID_PREFIX) :])
    except ValueError:
        return None


def input_file_id(request_id: uuid.UUID, name: str) -> str:
    """The id of a request's copy of its input ``name``: the same for every submission of the
    same request, so a duplicate writes nothing new."""
    return file_id(uuid.uuid5(_NAMESPACE, f"{request_id}/input/{name}"))


def result_file_id(request_id: uuid.UUID, step: int | None, index: int) -> str:
    """The id of result ``index`` of a request (or of its step ``step``): every attempt of the
    job names it alike, and only the recorded attempt's file is written."""
    where = "-" if step is None else str(step)
    return file_id(uuid.uuid5(_NAMESPACE, f"{request_id}/result/{where}/{index}"))


def blob_key(sha256: str) -> str:
    """Where a blob lives in the store: ``ab/cd/abcd...`` (two levels keep directories small)."""
    return f"{sha256[:2]}/{sha256[2:4]}/{sha256}"


class FileRef(BaseModel):
    """A file in a request's inputs (on its task) or results: what it is, never its bytes."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    type: Literal["file"] = "file"
    id: str
    sha256: str = Field(pattern=SHA256_PATTERN)
    media_type: str
    bytes: int = Field(ge=0)
    width: int | None = Field(default=None, ge=1)
    height: int | None = Field(default=None, ge=1)


def is_file_result(value: object) -> bool:
    """Whether a result (an element of ``results``) is a file reference."""
    return isinstance(value, dict) and value.get("type") == "file"
