"""Collection: what nothing refers to any more leaves the store, and its row leaves Postgres.

- **Expired uploads**: a user's upload past its ``expires_at`` is deleted (its blob is then
  unreferenced, unless something else refers to it).
- **Unreferenced blobs**: a ``blobs`` row no file refers to, untouched for the grace period, is
  locked (``FOR UPDATE SKIP LOCKED``: replicas share the work), its object deleted, then its row,
  and the transaction commits. A writer registering the same blob meanwhile (an upload's upsert,
  a result being recorded) waits on the row lock, then inserts the row anew; an upload puts its
  object after that. The lock also keeps any new file from referring to the row (a foreign key
  check takes a share lock on it), so "unreferenced" is read again once the lock is held. An
  object modified within the grace period (a worker's put of a result not recorded yet) is left,
  and its row touched.
- **Orphans**: an object with no ``blobs`` row (a worker killed after its put and before its
  result was recorded, a row lost), older than its own threshold, is deleted under a placeholder
  row: the row is inserted (ON CONFLICT DO NOTHING) in a transaction, and only if this
  transaction inserted it is the object looked at again, left if it was modified since it was
  listed, else deleted, then the row, and the transaction commits. Anyone registering it
  meanwhile waits, as above.

Ages of rows are read on the database clock; an object's modification time is the store's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from libs.blobs.store import BlobMeta, BlobStore
from libs.db import PgPool

_CONCURRENCY = 16
"""Store requests (head, delete) in flight at once within a batch of unreferenced blobs."""
_ORPHAN_CONCURRENCY = 4
"""Orphans collected at once (each holds a connection of the pool while it is)."""

_EXPIRE_UPLOADS = """
WITH due AS (
    SELECT id FROM files
    WHERE purpose = 'upload' AND expires_at < now()
    ORDER BY expires_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
), gone AS (
    DELETE FROM files f USING due WHERE f.id = due.id RETURNING 1
)
SELECT count(*) FROM gone
"""

_LOCK_UNREFERENCED = """
SELECT b.sha256, b.size, now() AS now FROM blobs b
WHERE b.touched_at < now() - make_interval(secs => $1)
  AND NOT EXISTS (SELECT 1 FROM files f WHERE f.sha256 = b.sha256)
ORDER BY b.touched_at
LIMIT $2
FOR UPDATE OF b SKIP LOCKED
"""

# A new statement, a new snapshot: a file committed after the one above began is seen now, and
# none can be added while the rows are locked.
_STILL_UNREFERENCED = """
SELECT s.sha256 FROM unnest($1::text[]) AS s(sha256)
WHERE NOT EXISTS (SELECT 1 FROM files f WHERE f.sha256 = s.sha256)
"""

_TOUCH = "UPDATE blobs SET touched_at = now() WHERE sha256 = ANY($1::text[])"
_DELETE = "DELETE FROM blobs WHERE sha256 = ANY($1::text[])"

_UNKNOWN = """
SELECT s.sha256 FROM unnest($1::text[]) AS s(sha256)
WHERE NOT EXISTS (SELECT 1 FROM blobs b WHERE b.sha256 = s.sha256)
"""

_PLACEHOLDER = """
INSERT INTO blobs (sha256, size, touched_at) VALUES ($1, $2, now())
ON CONFLICT (sha256) DO NOTHING
RETURNING true
"""


@dataclass
class Collected:
    """What a collection removed from the store."""

    blobs: int = 0
    bytes: int = 0

    def add(self, other: Collected) -> None:
        self.blobs += other.blobs
        self.bytes += other.bytes


@dataclass
class _Batch:
    deleted: list[str] = field(default_factory=list)
    recent: list[str] = field(default_factory=list)


async def expire_uploads(pool: PgPool, *, batch: int) -> int:
    """Delete the uploads past their ``expires_at``, ``batch`` per transaction; returns how many."""
    total = 0
    while True:
        async with pool.acquire() as conn, conn.transaction():
            deleted: int = await conn.fetchval(_EXPIRE_UPLOADS, batch)
        total += deleted
        if deleted < batch:
            return total


async def collect_unreferenced(
    pool: PgPool, store: BlobStore, *, grace_s: float, batch: int, max_batches: int | None = None
) -> Collected:
    """Delete the blobs no file refers to and untouched for ``grace_s`` (objects, then rows),
    ``batch`` per transaction, until none is left (or ``max_batches`` were done)."""
    total = Collected()
    done = 0
    while max_batches is None or done < max_batches:
        collected, locked = await _collect_batch(pool, store, grace_s=grace_s, batch=batch)
        total.add(collected)
        done += 1
        if locked < batch:
            break
    return total


async def _collect_batch(
    pool: PgPool, store: BlobStore, *, grace_s: float, batch: int
) -> tuple[Collected, int]:
    async with pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(_LOCK_UNREFERENCED, grace_s, batch)
        if not rows:
            return Collected(), 0
        still = await conn.fetch(_STILL_UNREFERENCED, [r["sha256"] for r in rows])
        free = {r["sha256"] for r in still}
        sizes = {r["sha256"]: r["size"] for r in rows if r["sha256"] in free}
        written_since: datetime = rows[0]["now"] - timedelta(seconds=grace_s)
        result = _Batch()

        async def collect(sha256: str) -> None:
            meta = await store.head(sha256)
            if meta is not None and meta.modified > written_since:
                result.recent.append(sha256)
                return
            await store.delete(sha256)
            result.deleted.append(sha256)

        await _bounded(collect, sizes, concurrency=_CONCURRENCY)
        if result.recent:
            await conn.execute(_TOUCH, result.recent)
        await conn.execute(_DELETE, result.deleted)
    return Collected(len(result.deleted), sum(sizes[s] for s in result.deleted)), len(rows)


async def collect_orphans(
    pool: PgPool, store: BlobStore, *, older_than_s: float, limit: int
) -> Collected:
    """Delete the objects of the store that have no ``blobs`` row and were last modified more
    than ``older_than_s`` ago (by the database clock), at most ``limit`` of them per call."""
    now: datetime = await pool.fetchval("SELECT now()")
    cutoff = now - timedelta(seconds=older_than_s)
    candidates: dict[str, BlobMeta] = {}
    old: list[BlobMeta] = []
    async for meta in store.list():
        if meta.modified < cutoff:
            old.append(meta)
        if len(old) >= 1000:
            candidates.update(await _unknown(pool, old))
            old = []
        if len(candidates) >= limit:
            break
    if old:
        candidates.update(await _unknown(pool, old))
    chosen = dict(list(candidates.items())[:limit])
    total = Collected()

    async def collect(sha256: str) -> None:
        if await _collect_orphan(pool, store, chosen[sha256]):
            total.add(Collected(1, chosen[sha256].size))

    await _bounded(collect, chosen, concurrency=_ORPHAN_CONCURRENCY)
    return total


async def _unknown(pool: PgPool, metas: list[BlobMeta]) -> dict[str, BlobMeta]:
    rows = await pool.fetch(_UNKNOWN, [m.sha256 for m in metas])
    unknown = {r["sha256"] for r in rows}
    return {m.sha256: m for m in metas if m.sha256 in unknown}


async def _collect_orphan(pool: PgPool, store: BlobStore, listed: BlobMeta) -> bool:
    async with pool.acquire() as conn, conn.transaction():
        if not await conn.fetchval(_PLACEHOLDER, listed.sha256, listed.size):
            return False  # registered since it was listed: someone refers to it, or will
        again = await store.head(listed.sha256)
        deleted = again is not None and again.modified == listed.modified
        if deleted:
            await store.delete(listed.sha256)
        await conn.execute(_DELETE, [listed.sha256])
    return deleted


async def _bounded(
    work: Callable[[str], Awaitable[None]], keys: Iterable[str], *, concurrency: int
) -> None:
    """``work(key)`` for each key, at most ``concurrency`` at a time. The first error stops the
    rest (those under way are cancelled) and is raised as itself."""
    limit = asyncio.Semaphore(concurrency)

    async def one(key: str) -> None:
        async with limit:
            await work(key)

    try:
        async with asyncio.TaskGroup() as group:
            for key in keys:
                group.create_task(one(key))
    except ExceptionGroup as failed:
        raise failed.exceptions[0] from None
