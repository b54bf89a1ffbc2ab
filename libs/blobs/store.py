"""One interface over the filesystem and S3-compatible stores, keyed by a blob's sha256.

``open_store(url)`` takes ``file:///abs/path`` (or a plain path) or ``s3://bucket[/prefix]``; an S3
store reads its endpoint, region and credentials from the standard ``AWS_*`` environment
variables (``AWS_ENDPOINT_URL``, ``AWS_REGION``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
``AWS_ALLOW_HTTP`` for a plain-HTTP endpoint), which are the operator's.

Writes are whole-object puts (atomic on both backends: a reader never sees half a blob), and a
put of a blob already stored writes the same bytes again, refreshing its modification time."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import obstore
from obstore.store import LocalStore, ObjectStore, from_url

from libs.contracts.files import blob_key


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True, slots=True)
class StoredBlob:
    sha256: str
    size: int


@dataclass(frozen=True, slots=True)
class BlobMeta:
    sha256: str
    size: int
    modified: datetime


class BlobStore:
    """Blobs by sha256 in one ``obstore`` store."""

    def __init__(self, store: ObjectStore, *, url: str) -> None:
        self._store = store
        self.url = url
        """Where it keeps blobs (for logs and health; never holds a credential)."""

    async def put(self, data: bytes) -> StoredBlob:
        """Store ``data`` under its sha256 (again, if it is there already)."""
        digest = sha256_of(data)
        await obstore.put_async(self._store, blob_key(digest), data)
        return StoredBlob(digest, len(data))

    async def get(self, sha256: str) -> bytes:
        """The blob's bytes; ``FileNotFoundError`` when it is not stored."""
        result = await obstore.get_async(self._store, blob_key(sha256))
        return bytes(await result.bytes_async())

    async def stream(self, sha256: str) -> AsyncIterator[bytes]:
        """The blob's bytes in chunks, for serving large files without holding them whole;
        ``FileNotFoundError`` (raised at once) when it is not stored."""
        result = await obstore.get_async(self._store, blob_key(sha256))

        async def chunks() -> AsyncIterator[bytes]:
            async for chunk in result.stream():
                yield bytes(chunk)

        return chunks()

    async def head(self, sha256: str) -> BlobMeta | None:
        try:
            meta = await obstore.head_async(self._store, blob_key(sha256))
        except FileNotFoundError:
            return None
        return BlobMeta(sha256, meta["size"], meta["last_modified"])

    async def delete(self, sha256: str) -> None:
        """Remove the blob; nothing happens when it is not stored."""
        try:
            await obstore.delete_async(self._store, blob_key(sha256))
        except FileNotFoundError:
            return

    async def list(self) -> AsyncIterator[BlobMeta]:
        """Every stored blob (in no particular order); other objects under the store's root are
        skipped."""
        async for batch in obstore.list(self._store, chunk_size=1000):
            for meta in batch:
                name = meta["path"].rsplit("/", 1)[-1]
                if len(name) == 64 and meta["path"] == blob_key(name):
                    yield BlobMeta(name, meta["size"], meta["last_modified"])


def open_store(url: str) -> BlobStore:
    """The store at ``url``: ``file:///abs/dir``, a path (made absolute and created), or
    ``s3://bucket[/prefix]`` (configured by the ``AWS_*`` environment variables)."""
    if url.startswith("s3://"):
        return BlobStore(from_url(url), url=url)
    path = Path(url.removeprefix("file://")).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return BlobStore(LocalStore(path), url=path.as_uri())
