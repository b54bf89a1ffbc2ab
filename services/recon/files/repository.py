"""Figures of the files and blobs, read from Postgres (one scan of each table: the collection
reads them once per run, never a health check)."""

from __future__ import annotations

from dataclasses import dataclass

from libs.db import PgConnection

PURPOSES = ("upload", "input", "result")

_FIGURES = """
SELECT (SELECT count(*) FROM blobs) AS blobs,
       (SELECT coalesce(sum(size), 0) FROM blobs)::bigint AS blob_bytes,
       (SELECT coalesce(jsonb_object_agg(purpose, n), '{}'::jsonb)
        FROM (SELECT purpose, count(*) AS n FROM files GROUP BY purpose) p) AS files
"""


@dataclass(frozen=True, slots=True)
class FileFigures:
    blobs: int
    blob_bytes: int
    files: dict[str, int]
    """By purpose, every purpose named (0 when there is none)."""


async def read_figures(conn: PgConnection) -> FileFigures:
    row = await conn.fetchrow(_FIGURES)
    assert row is not None
    files = row["files"]
    return FileFigures(
        blobs=row["blobs"],
        blob_bytes=row["blob_bytes"],
        files={purpose: int(files.get(purpose, 0)) for purpose in PURPOSES},
    )
