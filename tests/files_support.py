"""Images, blobs and file references for the files tests, and a catalog whose offers take files."""

from __future__ import annotations

import io
import struct
import uuid
import zlib
from typing import Any

import asyncpg
from PIL import Image

from libs.blobs.store import sha256_of
from libs.catalog import CatalogSpec
from libs.contracts.files import FileRef, result_file_id


def file_result(
    request_id: uuid.UUID, index: int, data: bytes, *, step: int | None = None
) -> dict[str, Any]:
    """What a worker puts in the results list for a file it stored: its ``FileRef`` as JSON."""
    return FileRef(
        id=result_file_id(request_id, step, index),
        sha256=sha256_of(data),
        media_type="image/png",
        bytes=len(data),
        width=2,
        height=3,
    ).model_dump()


async def file_rows(pool: asyncpg.Pool[Any]) -> list[asyncpg.Record]:
    return await pool.fetch(
        "SELECT id, user_id, sha256, purpose, media_type, bytes, width, height, request_id, "
        "step, name FROM files ORDER BY request_id, step NULLS FIRST, name"
    )


async def blob_rows(pool: asyncpg.Pool[Any]) -> dict[str, int]:
    rows = await pool.fetch("SELECT sha256, size FROM blobs")
    return {r["sha256"]: r["size"] for r in rows}


async def register_blob(pool: asyncpg.Pool[Any], data: bytes, *, age_s: float = 0) -> str:
    """The blob's row, as a writer upserts it before (an upload) or as (a result) it stores the
    bytes; ``age_s``: last touched that long ago."""
    sha256 = sha256_of(data)
    await pool.execute(
        """INSERT INTO blobs (sha256, size, touched_at)
           VALUES ($1, $2, now() - make_interval(secs => $3))
           ON CONFLICT (sha256) DO UPDATE SET touched_at = excluded.touched_at""",
        sha256,
        len(data),
        float(age_s),
    )
    return sha256


async def add_file(
    pool: asyncpg.Pool[Any],
    user_id: uuid.UUID,
    data: bytes,
    *,
    request_id: uuid.UUID | None = None,
    purpose: str = "upload",
    expires_in_s: float | None = None,
) -> str:
    """A file row that refers to the (registered) blob of ``data``: an upload of the user's, or
    an input or result of ``request_id``; returns its id."""
    file_id = "file-" + uuid.uuid4().hex
    await pool.execute(
        """INSERT INTO files (id, user_id, sha256, purpose, media_type, bytes, request_id,
                              expires_at)
           VALUES ($1, $2, $3, $4, 'image/png', $5, $6,
                   now() + make_interval(secs => $7::float8))""",
        file_id,
        user_id,
        sha256_of(data),
        purpose,
        len(data),
        request_id,
        expires_in_s,
    )
    return file_id


FILES_CATALOG = CatalogSpec.model_validate(
    {
        "handlers": [{"id": "echo.text"}],
        "offers": [
            {
                "service": "img",
                "action": "describe",
                "price": 3,
                "prompt_template": "Describe: {prompt}",
                "handler": "echo.text",
                "files": {"image": {}},
            },
            {
                "service": "img",
                "action": "strict",
                "price": 3,
                "prompt_template": "{prompt}",
                "handler": "echo.text",
                "files": {
                    "photo": {"types": ["image/jpeg"], "max_bytes": 4000, "max_pixels": 5000},
                    "mask": {"required": False},
                },
            },
            {
                "service": "demo",
                "action": "echo",
                "price": 2,
                "prompt_template": "{text}",
                "handler": "echo.text",
            },
        ],
    }
)


def encoded(fmt: str = "PNG", size: tuple[int, int] = (30, 20), color: str = "red") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, fmt)
    return out.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))


def png_bomb(side: int = 20_000) -> bytes:
    """A ``side`` × ``side`` one-bit PNG (about 50 kB at 20,000: 400 million pixels), written
    row by row so that making it never holds the decoded image."""
    row = b"\x00" * (1 + (side + 7) // 8)
    packer = zlib.compressobj(9)
    data = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", data)
        + _chunk(b"IEND", b"")
    )
