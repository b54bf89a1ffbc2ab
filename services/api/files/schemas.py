"""What the files API answers, and the OpenAPI of what it takes."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from libs.catalog.numbers import INT32_MAX
from libs.contracts.files import IMAGE_TYPES
from services.api.errors import BadRequest
from services.api.files.signing import content_path


class FileView(BaseModel):
    model_config = ConfigDict(use_attribute_docstrings=True)

    id: str
    object: Literal["file"] = "file"
    purpose: Literal["upload", "input", "result"]
    """``upload``: yours, from ``POST /files``; ``input``: a request's copy of an input;
    ``result``: a job's output. A request's files go with its results."""
    bytes: int
    media_type: str
    """The type recognised from the bytes (never the one a client declared)."""
    width: int | None
    height: int | None
    filename: str | None
    sha256: str
    created_at: datetime
    expires_at: datetime | None
    """When an upload is deleted (``RELAI_UPLOAD_TTL_S``, or its ``expires_after``)."""
    url: str
    """Its bytes, for its owner (``Authorization``); ``POST /files/{id}/url`` signs one for
    anyone."""


class FilePage(BaseModel):
    items: list[FileView]
    next_cursor: str | None
    """Pass as ``cursor`` to get the next (older) page; null on the last page."""


class SignedUrl(BaseModel):
    url: str
    """The file's bytes without a key, until ``expires_at`` (a path: prefix the API's
    address)."""
    expires_at: datetime


def file_view(row: Any) -> FileView:
    return FileView(
        id=row["id"],
        purpose=row["purpose"],
        bytes=row["bytes"],
        media_type=row["media_type"],
        width=row["width"],
        height=row["height"],
        filename=row["filename"],
        sha256=row["sha256"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        url=content_path(row["id"]),
    )


def encode_cursor(created_at: datetime, file_id: str) -> str:
    raw = f"{created_at.isoformat()}|{file_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created_at, file_id = raw.split("|")
        return datetime.fromisoformat(created_at), file_id
    except ValueError as exc:
        raise BadRequest("cursor is not one this API returned") from exc


UPLOAD_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": {
                    "file": {
                        "type": "string",
                        "format": "binary",
                        "description": "An image: PNG, JPEG, WebP or GIF, recognised from its "
                        "bytes, at most RELAI_UPLOAD_MAX_BYTES.",
                    },
                    "expires_after": {
                        "type": "integer",
                        "minimum": 1,
                        "maximum": INT32_MAX,
                        "description": "Seconds to keep it (at most RELAI_UPLOAD_TTL_S, the "
                        "default).",
                    },
                },
                "required": ["file"],
                "additionalProperties": False,
            },
            "encoding": {"file": {"contentType": ", ".join(IMAGE_TYPES)}},
        }
    },
}
"""``POST /files``'s body, read by the call itself (after the caller is authenticated)."""

CONTENT_HEADERS: dict[str, Any] = {
    name: {"description": description, "schema": {"type": "string"}}
    for name, description in (
        ("ETag", "The sha256 of the bytes, quoted: send it as If-None-Match"),
        ("Cache-Control", "private, max-age=31536000, immutable: an id's bytes never change"),
        ("Content-Disposition", "inline, with the file's name"),
        ("Content-Security-Policy", "default-src 'none'; sandbox"),
    )
}

CONTENT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The file's bytes, as the type stored for it",
        "content": {
            media_type: {"schema": {"type": "string", "format": "binary"}}
            for media_type in IMAGE_TYPES
        },
        "headers": CONTENT_HEADERS,
    },
    304: {
        "description": "Not modified: If-None-Match names its ETag",
        "headers": {k: CONTENT_HEADERS[k] for k in ("ETag", "Cache-Control")},
    },
    403: {"description": "A signed URL that is not one this API signed, or has expired"},
    404: {"description": "No such file, or another user's, or an expired one"},
}
