"""Uploads and a request's input files: the SQL that writes them (and the fragments that other
statements splice in), and the reads of a user's files.

The writing order keeps recon's collection (``libs.files.collect``) from deleting bytes that are
about to be referred to: a blob is registered (``register_blobs``: its row upserted, touched now)
before its bytes are put into the store, and the ``files`` rows that refer to it are written
after (``insert_upload``, or the submit statement's ``input_files`` CTE)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from libs.contracts.files import FileRef, file_id
from libs.db import PgConnection, PgPool

Db = PgPool | PgConnection

_REGISTER = """
INSERT INTO blobs (sha256, size)
SELECT DISTINCT ON (b.sha256) b.sha256, b.size
FROM unnest($1::text[], $2::bigint[]) AS b(sha256, size) ORDER BY b.sha256
ON CONFLICT (sha256) DO UPDATE SET touched_at = now()
"""

_COLUMNS = (
    "id, sha256, purpose, media_type, bytes, width, height, filename, request_id, name, "
    "created_at, expires_at"
)

_INSERT_UPLOAD = f"""
INSERT INTO files (id, user_id, sha256, purpose, media_type, bytes, width, height, filename,
                   expires_at)
VALUES ($1, $2, $3, 'upload', $4, $5, $6, $7, $8, now() + make_interval(secs => $9))
RETURNING {_COLUMNS}
"""

_LIVE = "(f.expires_at IS NULL OR f.expires_at > now())"

_GET = f"""
SELECT {_COLUMNS} FROM files f WHERE f.id = $1 AND f.user_id = $2 AND {_LIVE}
"""

_GET_ANY = f"""
SELECT {_COLUMNS} FROM files f WHERE f.id = $1 AND {_LIVE}
"""

_GET_MANY = f"""
SELECT {_COLUMNS} FROM files f
WHERE f.id = ANY($1::text[]) AND f.user_id = $2 AND {_LIVE}
"""

_LIST = f"""
SELECT {_COLUMNS} FROM files f
WHERE f.user_id = $1 AND f.purpose = 'upload' AND {_LIVE}
  AND ($2::timestamptz IS NULL OR (f.created_at, f.id) < ($2, $3))
ORDER BY f.created_at DESC, f.id DESC
LIMIT $4
"""

_DELETE = """
DELETE FROM files f WHERE f.id = $1 AND f.user_id = $2 AND f.purpose = 'upload' RETURNING f.id
"""


@dataclass(frozen=True, slots=True)
class InputFile:
    """A request's input file, as the submit statement writes it (its blob registered and
    stored already)."""

    id: str
    """``input_file_id(request_id, name)``."""
    name: str
    sha256: str
    media_type: str
    bytes: int
    width: int | None
    height: int | None
    filename: str | None = None

    def ref(self) -> FileRef:
        return FileRef(
            id=self.id,
            sha256=self.sha256,
            media_type=self.media_type,
            bytes=self.bytes,
            width=self.width,
            height=self.height,
        )


async def register_blobs(db: Db, blobs: Sequence[tuple[str, int]]) -> None:
    """Upsert a ``blobs`` row per ``(sha256, size)``, touched now: before their bytes are put
    into the store, and before a file refers to them. (In sha order, so that two writers of the
    same blobs lock them in one order.)"""
    if blobs:
        await db.execute(_REGISTER, [sha for sha, _ in blobs], [size for _, size in blobs])


async def insert_upload(
    db: Db,
    *,
    user_id: uuid.UUID,
    sha256: str,
    media_type: str,
    size: int,
    width: int | None,
    height: int | None,
    filename: str | None,
    ttl_s: int,
) -> asyncpg.Record:
    """A new upload of the (registered and stored) blob ``sha256``, kept ``ttl_s`` seconds."""
    row = await db.fetchrow(
        _INSERT_UPLOAD,
        file_id(uuid.uuid4()),
        user_id,
        sha256,
        media_type,
        size,
        width,
        height,
        filename,
        float(ttl_s),
    )
    assert row is not None  # an INSERT ... RETURNING returns its row
    return row


async def get_user_file(db: Db, file_id: str, user_id: uuid.UUID) -> asyncpg.Record | None:
    """The user's file ``file_id`` (an upload, or one of their requests' inputs or results);
    None for another user's, an expired upload, or none."""
    return await db.fetchrow(_GET, file_id, user_id)


async def get_file(db: Db, file_id: str) -> asyncpg.Record | None:
    """The file ``file_id``, whoever's it is (for a signed URL); None for an expired upload or
    none."""
    return await db.fetchrow(_GET_ANY, file_id)


async def get_user_files(
    db: Db, file_ids: Sequence[str], user_id: uuid.UUID
) -> dict[str, asyncpg.Record]:
    """``get_user_file`` for several ids at once, by id (the missing ones left out)."""
    if not file_ids:
        return {}
    rows = await db.fetch(_GET_MANY, list(file_ids), user_id)
    return {row["id"]: row for row in rows}


async def list_uploads(
    db: Db,
    user_id: uuid.UUID,
    *,
    before: tuple[datetime, str] | None,
    limit: int,
) -> list[asyncpg.Record]:
    """The user's live uploads, newest first, from just past ``before`` (the ``created_at`` and
    id of the last one of the page before)."""
    created_at, last_id = before if before else (None, None)
    return await db.fetch(_LIST, user_id, created_at, last_id, limit)


async def delete_upload(db: Db, file_id: str, user_id: uuid.UUID) -> bool:
    """Delete the user's upload ``file_id``; False when there is none (a request's input or
    result files are not uploads: they go with the request's results). Its blob stays until
    collected: other files may refer to it."""
    return await db.fetchval(_DELETE, file_id, user_id) is not None


def input_files_cte(*, request: str, user: str, first: int, name: str = "input_files") -> str:
    """A CTE named ``name`` that writes the input files of the request inserted by the CTE
    ``request`` (``id``; nothing when it inserted none, as for a duplicate) for the user
    ``user`` (an SQL expression), from eight array parameters from ``$first`` on, as
    ``input_files_args`` gives them."""
    p = [f"${first + i}" for i in range(8)]
    return f"""{name} AS (
    INSERT INTO files (id, user_id, sha256, purpose, media_type, bytes, width, height, filename,
                       request_id, name)
    SELECT f.id, {user}, f.sha256, 'input', f.media_type, f.bytes, f.width, f.height,
           f.filename, r.id, f.name
    FROM {request} r, unnest({p[0]}::text[], {p[1]}::text[], {p[2]}::text[], {p[3]}::text[],
                             {p[4]}::bigint[], {p[5]}::int[], {p[6]}::int[], {p[7]}::text[])
        AS f(id, name, sha256, media_type, bytes, width, height, filename)
    ON CONFLICT (id) DO NOTHING
)"""


def input_files_args(files: Sequence[InputFile]) -> list[list[Any]]:
    """The eight arrays ``input_files_cte`` takes."""
    return [
        [f.id for f in files],
        [f.name for f in files],
        [f.sha256 for f in files],
        [f.media_type for f in files],
        [f.bytes for f in files],
        [f.width for f in files],
        [f.height for f in files],
        [f.filename for f in files],
    ]


def input_files_json(request_id: str) -> str:
    """An SQL expression: the input files of the request whose id is ``request_id`` (an SQL
    expression), as a jsonb object of ``FileRef`` fields by input name; NULL when it has none
    (or they have expired with its results)."""
    return f"""(SELECT jsonb_object_agg(f.name, jsonb_build_object(
        'type', 'file', 'id', f.id, 'sha256', f.sha256, 'media_type', f.media_type,
        'bytes', f.bytes, 'width', f.width, 'height', f.height))
    FROM files f WHERE f.request_id = {request_id} AND f.purpose = 'input')"""


def file_refs(value: dict[str, Any] | None) -> dict[str, FileRef] | None:
    """What ``input_files_json`` read, as the task's ``files``."""
    if not value:
        return None
    return {name: FileRef.model_validate(ref) for name, ref in value.items()}
