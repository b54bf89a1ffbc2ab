"""A request's files go with its results: when expiry purges a request's results, the same
statement deletes the rows of its files, inputs and results alike (its uploads, which are the
user's, stay). The blobs they referred to are then unreferenced, and recon's collection deletes
them once their grace has passed (``libs.files.collect``)."""

from __future__ import annotations


def forget(source: str, *, name: str = "expired_files") -> str:
    """A CTE named ``name`` (returning the ``sha256`` of each file row it deleted) that deletes the
    files of the requests in ``source``, a relation with their ``id``, to splice into the
    statement that expires them."""
    return f"""{name} AS (
    DELETE FROM files f USING {source} x
    WHERE f.request_id = x.id
    RETURNING f.sha256
)"""
