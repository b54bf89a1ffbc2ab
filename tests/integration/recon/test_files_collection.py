"""Recon's collection against real Postgres and both blob stores (a directory, S3): what nothing
refers to leaves the store after its grace, what is referenced never does, orphans go after
theirs, and a writer racing a collection waits for it and stores its blob again after."""

import asyncio
from typing import Any

import asyncpg
import pytest
from prometheus_client import REGISTRY

from libs.accounts import NewUser
from libs.blobs.store import BlobMeta, BlobStore, open_store, sha256_of
from libs.files.collect import Collected, collect_orphans, collect_unreferenced
from libs.outcomes import Ended, expire_due, record_outcomes
from services.recon.alerts.leader import Leadership
from services.recon.files.service import ORPHANS_LOCK, FilesCollector
from tests.deals_support import load_deals_catalog, submit_offer
from tests.files_support import add_file, blob_rows, file_result, register_blob
from tests.integration.recon.conftest import recon, settings_for
from tests.support import ServerUrls, create_user

DATA = b"\x89PNG the bytes of an image"
OTHER = b"\x89PNG another image"


@pytest.fixture
def store(blob_url: str) -> BlobStore:
    return open_store(blob_url)


@pytest.fixture
async def user(db_pool: "asyncpg.Pool[Any]") -> NewUser:
    return await create_user(db_pool, name="gus", credits=1000)


def collector(
    pool: "asyncpg.Pool[Any]",
    store: BlobStore,
    *,
    grace_s: float = 0,
    orphan_after_s: float = 0,
    leadership: Leadership | None = None,
) -> FilesCollector:
    return FilesCollector(
        pool,
        store,
        leadership=leadership,
        grace_s=grace_s,
        orphan_after_s=orphan_after_s,
        interval_s=60,
        orphan_interval_s=60,
        batch=2,  # several batches in a test
        orphan_limit=100,
    )


async def stored(store: BlobStore) -> set[str]:
    return {meta.sha256 async for meta in store.list()}


class PausingStore(BlobStore):
    """The same store, each delete held until the test lets it go: a collection stopped with
    its lock held."""

    def __init__(self, inner: BlobStore) -> None:
        super().__init__(inner._store, url=inner.url)
        self.deleting = asyncio.Event()
        self.go = asyncio.Event()

    async def delete(self, sha256: str) -> None:
        self.deleting.set()
        await self.go.wait()
        await super().delete(sha256)


async def upsert_waits(pool: "asyncpg.Pool[Any]", sha256: str) -> "asyncio.Task[None]":
    """An upload's first step, the blob's row upserted, begun while a collection holds the row:
    returned once Postgres shows it waiting on that lock."""

    async def upsert() -> None:
        await register_blob(pool, DATA)

    task = asyncio.create_task(upsert())
    for _ in range(100):
        waiting = await pool.fetchval(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE wait_event_type = 'Lock' AND query LIKE '%INSERT INTO blobs%'"
        )
        if waiting:
            break
        await asyncio.sleep(0.05)
    assert waiting == 1
    assert not task.done()
    return task


async def test_an_unreferenced_blob_is_collected_after_its_grace_and_not_before(
    db_pool: "asyncpg.Pool[Any]", store: BlobStore
) -> None:
    await store.put(DATA)
    sha256 = await register_blob(db_pool, DATA)

    assert await collector(db_pool, store, grace_s=1).run_once() == Collected()
    assert await stored(store) == {sha256}

    await asyncio.sleep(1.2)
    collected = await collector(db_pool, store, grace_s=1).run_once()

    assert (collected.blobs, collected.bytes) == (1, len(DATA))
    assert await stored(store) == set()
    assert await blob_rows(db_pool) == {}


async def test_a_referenced_blob_is_never_collected(
    db_pool: "asyncpg.Pool[Any]", store: BlobStore, user: NewUser
) -> None:
    await store.put(DATA)
    await register_blob(db_pool, DATA, age_s=86400)
    await add_file(db_pool, user.id, DATA)

    collected = await collector(db_pool, store).run_once()
    swept = await collector(db_pool, store).sweep_orphans()

    assert (collected.blobs, swept.blobs) == (0, 0)
    assert await stored(store) == {sha256_of(DATA)}
    assert await blob_rows(db_pool) == {sha256_of(DATA): len(DATA)}


async def test_an_object_written_since_its_row_was_touched_is_left_and_its_row_touched(
    db_pool: "asyncpg.Pool[Any]", store: BlobStore
) -> None:
    """A worker stored a result whose bytes an old, unreferenced row names: its result is not
    recorded yet, and the object must stay for it."""
    await register_blob(db_pool, DATA, age_s=7200)
    await store.put(DATA)

    collected = await collector(db_pool, store, grace_s=3600).run_once()

    assert collected.blobs == 0
    assert await stored(store) == {sha256_of(DATA)}
    age = await db_pool.fetchval("SELECT extract(epoch FROM now() - touched_at) FROM blobs")
    assert age < 60


async def test_batches_collect_every_unreferenced_blob_and_what_had_no_object(
    db_pool: "asyncpg.Pool[Any]", store: BlobStore
) -> None:
    blobs = [f"blob {n}".encode() for n in range(5)]
    for data in blobs:
        await store.put(data)
        await register_blob(db_pool, data)
    await register_blob(db_pool, OTHER)  # an upload that died before its put

    collected = await collector(db_pool, store).run_once()

    assert (collected.blobs, collected.bytes) == (6, sum(map(len, blobs)) + len(OTHER))
    assert await stored(store) == set()
    assert await blob_rows(db_pool) == {}


async def test_an_orphan_is_collected_after_its_threshold_and_not_before(
    db_pool: "asyncpg.Pool[Any]", store: BlobStore
) -> None:
    await store.put(DATA)  # a worker killed after its put: no row

    assert (await collector(db_pool, store, orphan_after_s=3600).sweep_orphans()).blobs == 0
    assert await stored(store) == {sha256_of(DATA)}

    swept = await collector(db_pool, store, orphan_after_s=0).sweep_orphans()

    assert (swept.blobs, swept.bytes) == (1, len(DATA))
    assert await stored(store) == set()
    assert await blob_rows(db_pool) == {}  # the placeholder went with it


async def test_an_orphan_written_again_while_it_is_collected_is_left(
    db_pool: "asyncpg.Pool[Any]", store: BlobStore
) -> None:
    class Rewriting(BlobStore):
        """A writer stores the blob again between the listing and the second look."""

        async def head(self, sha256: str) -> BlobMeta | None:
            await asyncio.sleep(1.1)  # S3 keeps modification times to the second
            await self.put(DATA)
            return await super().head(sha256)

    await store.put(DATA)
    rewriting = Rewriting(store._store, url=store.url)

    swept = await collect_orphans(db_pool, rewriting, older_than_s=0, limit=10)

    assert swept.blobs == 0
    assert await stored(store) == {sha256_of(DATA)}
    assert await blob_rows(db_pool) == {}  # no placeholder left behind


async def test_an_upsert_during_a_collection_waits_and_the_blob_is_stored_again_after(
    db_pool: "asyncpg.Pool[Any]", store: BlobStore, user: NewUser
) -> None:
    await store.put(DATA)
    sha256 = await register_blob(db_pool, DATA)
    pausing = PausingStore(store)
    collecting = asyncio.create_task(collect_unreferenced(db_pool, pausing, grace_s=0, batch=10))
    await asyncio.wait_for(pausing.deleting.wait(), 10)  # the row is locked, the object going

    writer = await upsert_waits(db_pool, sha256)
    pausing.go.set()
    collected = await asyncio.wait_for(collecting, 10)
    await asyncio.wait_for(writer, 10)

    assert collected.blobs == 1
    assert await blob_rows(db_pool) == {sha256: len(DATA)}  # inserted anew, after the delete
    assert await stored(store) == set()
    # The upload goes on: it stores the bytes, then its file refers to them, and they stay.
    await store.put(DATA)
    await add_file(db_pool, user.id, DATA)
    assert (await collector(db_pool, store).run_once()).blobs == 0
    assert await store.get(sha256) == DATA


async def test_an_upsert_during_an_orphans_collection_waits_and_the_blob_is_stored_again_after(
    db_pool: "asyncpg.Pool[Any]", store: BlobStore, user: NewUser
) -> None:
    await store.put(DATA)
    pausing = PausingStore(store)
    sweeping = asyncio.create_task(collect_orphans(db_pool, pausing, older_than_s=0, limit=10))
    await asyncio.wait_for(pausing.deleting.wait(), 10)  # the placeholder row is held

    writer = await upsert_waits(db_pool, sha256_of(DATA))
    pausing.go.set()
    swept = await asyncio.wait_for(sweeping, 10)
    await asyncio.wait_for(writer, 10)

    assert swept.blobs == 1
    assert await blob_rows(db_pool) == {sha256_of(DATA): len(DATA)}
    await store.put(DATA)
    await add_file(db_pool, user.id, DATA)
    assert (await collector(db_pool, store).sweep_orphans()).blobs == 0
    assert await store.get(sha256_of(DATA)) == DATA


async def test_expiry_deletes_the_files_and_the_collection_then_the_blobs(
    db_pool: "asyncpg.Pool[Any]", store: BlobStore, user: NewUser
) -> None:
    await load_deals_catalog(db_pool)
    await db_pool.execute("UPDATE offers SET expiration = 60")
    request_id = await submit_offer(db_pool, user.id, "demo", "echo", "draw")
    await store.put(DATA)
    await register_blob(db_pool, DATA)
    await add_file(db_pool, user.id, DATA, request_id=request_id, purpose="input")
    await add_file(db_pool, user.id, DATA)  # the upload it was made from: the user's
    await store.put(OTHER)  # the worker's put of its result
    await record_outcomes(
        db_pool, ended=[Ended(request_id, 1, "succeeded", [file_result(request_id, 0, OTHER)])]
    )
    await db_pool.execute(
        "UPDATE requests SET finished_at = finished_at - interval '61 seconds' WHERE id = $1",
        request_id,
    )
    assert (await collector(db_pool, store).run_once()).blobs == 0  # referenced still

    async with db_pool.acquire() as conn, conn.transaction():
        assert len(await expire_due(conn, limit=10)) == 1
    collected = await collector(db_pool, store).run_once()

    assert (collected.blobs, collected.bytes) == (1, len(OTHER))
    assert await stored(store) == {sha256_of(DATA)}  # the upload keeps its blob
    assert await blob_rows(db_pool) == {sha256_of(DATA): len(DATA)}
    assert await db_pool.fetchval("SELECT purpose FROM files") == "upload"


async def test_expired_uploads_go_then_their_blobs_and_the_figures_follow(
    db_pool: "asyncpg.Pool[Any]", store: BlobStore, user: NewUser
) -> None:
    for data in (DATA, OTHER):
        await store.put(data)
        await register_blob(db_pool, data)
    await add_file(db_pool, user.id, DATA, expires_in_s=-1)
    kept = await add_file(db_pool, user.id, OTHER, expires_in_s=3600)
    files = collector(db_pool, store)
    before = REGISTRY.get_sample_value("relai_blobs_collected_total", {"reason": "unreferenced"})

    collected = await files.run_once()

    assert collected.blobs == 1
    assert await db_pool.fetchval("SELECT id FROM files") == kept
    assert await stored(store) == {sha256_of(OTHER)}
    report = files.report()
    assert (report.blobs, report.blob_bytes) == (1, len(OTHER))
    assert report.files == {"upload": 1, "input": 0, "result": 0}
    assert (report.uploads_expired, report.blobs_collected, report.bytes_freed) == (
        1,
        1,
        len(DATA),
    )
    assert report.last_collection_at is not None
    assert REGISTRY.get_sample_value("relai_blobs") == 1
    assert REGISTRY.get_sample_value("relai_blob_bytes") == len(OTHER)
    assert REGISTRY.get_sample_value("relai_files", {"purpose": "upload"}) == 1
    after = REGISTRY.get_sample_value("relai_blobs_collected_total", {"reason": "unreferenced"})
    assert (after or 0) - (before or 0) == 1


async def test_one_replica_sweeps_for_orphans(
    servers: ServerUrls, db_pool: "asyncpg.Pool[Any]", store: BlobStore
) -> None:
    await store.put(DATA)
    first = Leadership(servers.database_url, lock=ORPHANS_LOCK)
    second = Leadership(servers.database_url, lock=ORPHANS_LOCK)
    try:
        leading = collector(db_pool, store, leadership=first)
        other = collector(db_pool, store, leadership=second)

        swept = await leading.sweep_if_leading()
        assert await other.sweep_if_leading() is None

        assert swept is not None
        assert swept.blobs == 1
        assert leading.report().last_orphan_sweep_at is not None
        assert other.report().last_orphan_sweep_at is None
    finally:
        await first.release()
        await second.release()


async def test_health_has_a_files_section_from_the_collection(
    servers: ServerUrls, db_pool: "asyncpg.Pool[Any]", user: NewUser
) -> None:
    await register_blob(db_pool, DATA)
    await add_file(db_pool, user.id, DATA)

    async with recon(settings_for(servers)) as client:
        for _ in range(200):
            body = (await client.get("/health")).json()
            if body["files"]["last_collection_at"]:
                break
            await asyncio.sleep(0.05)

    assert body["status"] == "ok"
    files = body["files"]
    assert (files["blobs"], files["blob_bytes"]) == (1, len(DATA))
    assert files["files"] == {"upload": 1, "input": 0, "result": 0}
    assert (files["blobs_collected"], files["uploads_expired"]) == (0, 0)
