"""The blob store's contract, held on both backends: a directory and S3 (moto's server)."""

import asyncio
from datetime import UTC, datetime, timedelta

import obstore
import pytest

from libs.blobs.store import BlobStore, open_store, sha256_of
from libs.contracts.files import blob_key

DATA = bytes(range(256)) * 41  # not a multiple of any chunk size


@pytest.fixture
def store(blob_url: str) -> BlobStore:
    return open_store(blob_url)


async def _all(store: BlobStore) -> dict[str, int]:
    return {meta.sha256: meta.size async for meta in store.list()}


async def test_put_then_get_gives_the_same_bytes(store: BlobStore) -> None:
    stored = await store.put(DATA)

    assert (stored.sha256, stored.size) == (sha256_of(DATA), len(DATA))
    assert await store.get(stored.sha256) == DATA


async def test_an_empty_blob_is_a_blob(store: BlobStore) -> None:
    stored = await store.put(b"")

    assert await store.get(stored.sha256) == b""
    meta = await store.head(stored.sha256)
    assert meta is not None
    assert meta.size == 0


async def test_the_same_content_twice_is_one_object(store: BlobStore) -> None:
    first = await store.put(DATA)
    second = await store.put(DATA)
    other = await store.put(b"other")

    assert first == second
    assert await _all(store) == {first.sha256: len(DATA), other.sha256: 5}


async def test_head_tells_size_and_modification_time(store: BlobStore) -> None:
    before = datetime.now(UTC) - timedelta(seconds=5)
    stored = await store.put(DATA)

    meta = await store.head(stored.sha256)

    assert meta is not None
    assert (meta.sha256, meta.size) == (stored.sha256, len(DATA))
    assert before <= meta.modified <= datetime.now(UTC) + timedelta(seconds=5)
    assert await store.head(sha256_of(b"never stored")) is None


async def test_a_second_put_refreshes_the_modification_time(store: BlobStore) -> None:
    stored = await store.put(DATA)
    first = await store.head(stored.sha256)
    await asyncio.sleep(1.1)  # S3 times have a resolution of one second

    await store.put(DATA)

    again = await store.head(stored.sha256)
    assert first is not None
    assert again is not None
    assert again.modified > first.modified


async def test_delete_removes_the_blob_and_a_missing_one_is_fine(store: BlobStore) -> None:
    stored = await store.put(DATA)

    await store.delete(stored.sha256)
    await store.delete(stored.sha256)
    await store.delete(sha256_of(b"never stored"))

    assert await store.head(stored.sha256) is None
    assert await _all(store) == {}
    with pytest.raises(FileNotFoundError):
        await store.get(stored.sha256)


async def test_list_yields_only_blobs(store: BlobStore) -> None:
    stored = await store.put(DATA)
    raw = store._store  # what else an operator might keep in the same place
    sha = sha256_of(b"x")
    await obstore.put_async(raw, "notes.txt", b"not a blob")
    await obstore.put_async(raw, f"{sha}", b"x")  # a sha256 name, but not under ab/cd/
    await obstore.put_async(raw, f"zz/{blob_key(sha)[3:]}", b"x")  # the wrong prefix
    await obstore.put_async(raw, f"{blob_key(sha)}.tmp", b"x")

    listed = [meta async for meta in store.list()]

    assert [(m.sha256, m.size) for m in listed] == [(stored.sha256, len(DATA))]
    assert listed[0].modified.tzinfo is not None


async def test_stream_gives_the_bytes_in_chunks(store: BlobStore) -> None:
    big = DATA * 100
    stored = await store.put(big)

    chunks = [chunk async for chunk in await store.stream(stored.sha256)]

    assert b"".join(chunks) == big
    assert all(isinstance(chunk, bytes) for chunk in chunks)


async def test_get_or_stream_of_a_missing_blob_raises_file_not_found(store: BlobStore) -> None:
    missing = sha256_of(b"never stored")

    with pytest.raises(FileNotFoundError):
        await store.get(missing)
    with pytest.raises(FileNotFoundError):
        await store.stream(missing)
