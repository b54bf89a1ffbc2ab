"""Recon's collection of files and blobs (``libs.files.collect``), in two loops:

- every ``RELAI_BLOB_COLLECT_INTERVAL_S``, on every replica (they share the work, each batch
  skipping the rows another holds): expired uploads are deleted, then the blobs no file refers
  to and untouched for ``RELAI_BLOB_GRACE_S``; then the figures are read for the gauges and
  ``/health``;
- every ``RELAI_BLOB_ORPHAN_INTERVAL_S``, on the one replica that holds the sweep's advisory
  lock: the store is listed and the objects without a row, older than
  ``RELAI_BLOB_ORPHAN_AFTER_S``, are deleted (each under a placeholder row).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from libs.blobs.store import BlobStore
from libs.db import DATABASE_ERRORS, PgPool
from libs.files import collect
from libs.logs import get_logger
from libs.loops import every
from services.recon.alerts.leader import Leadership
from services.recon.files import repository
from services.recon.files.repository import FileFigures
from services.recon.files.schemas import FilesReport
from services.recon.metrics import registry

log = get_logger(__name__)

ORPHANS_LOCK = 0x72656C62  # "relb": the alerts' lock plus one
"""The advisory lock whose holder sweeps the store for orphans."""

_EXPECTED: tuple[type[Exception], ...] = (*DATABASE_ERRORS, OSError, TimeoutError)
"""Failures a loop logs as a warning: Postgres or the store away, for a while."""


class FilesCollector:
    def __init__(
        self,
        pool: PgPool,
        store: BlobStore,
        *,
        leadership: Leadership | None,
        grace_s: float,
        orphan_after_s: float,
        interval_s: float,
        orphan_interval_s: float,
        batch: int,
        orphan_limit: int,
    ) -> None:
        self._pool = pool
        self._store = store
        self._leadership = leadership
        self._grace_s = grace_s
        self._orphan_after_s = orphan_after_s
        self._interval_s = interval_s
        self._orphan_interval_s = orphan_interval_s
        self._batch = batch
        self._orphan_limit = orphan_limit
        self._figures: FileFigures | None = None
        self._last_collection_at: datetime | None = None
        self._last_orphan_sweep_at: datetime | None = None
        self._uploads_expired = 0
        self._collected = collect.Collected()

    def report(self) -> FilesReport:
        figures = self._figures
        return FilesReport(
            blobs=figures.blobs if figures else None,
            blob_bytes=figures.blob_bytes if figures else None,
            files=figures.files if figures else None,
            last_collection_at=self._last_collection_at,
            last_orphan_sweep_at=self._last_orphan_sweep_at,
            uploads_expired=self._uploads_expired,
            blobs_collected=self._collected.blobs,
            bytes_freed=self._collected.bytes,
        )

    async def run_forever(self) -> None:
        try:
            await asyncio.gather(
                every(self._interval_s, self.run_once, name="files_collection", expected=_EXPECTED),
                every(
                    self._orphan_interval_s,
                    self.sweep_if_leading,
                    name="files_orphans",
                    expected=_EXPECTED,
                ),
            )
        finally:
            if self._leadership is not None:
                await self._leadership.release()

    async def run_once(self) -> collect.Collected:
        """Delete the expired uploads and collect the unreferenced blobs; then read the figures.
        Returns what this run removed from the store."""
        expired = await collect.expire_uploads(self._pool, batch=self._batch)
        if expired:
            self._uploads_expired += expired
            registry.UPLOADS_EXPIRED.inc(expired)
            log.info("files.uploads_expired", count=expired)
        collected = await collect.collect_unreferenced(
            self._pool, self._store, grace_s=self._grace_s, batch=self._batch
        )
        self._count(collected, reason="unreferenced")
        async with self._pool.acquire() as conn:
            figures = await repository.read_figures(conn)
        self._figures = figures
        registry.BLOBS.set(figures.blobs)
        registry.BLOB_BYTES.set(figures.blob_bytes)
        for purpose, count in figures.files.items():
            registry.FILES.labels(purpose).set(count)
        self._last_collection_at = datetime.now(UTC)
        return collected

    async def sweep_if_leading(self) -> collect.Collected | None:
        """Sweep the store for orphans if this replica holds the sweep (or leadership is not
        used); None if another replica does."""
        if self._leadership is not None and not await self._leadership.is_leader():
            return None
        return await self.sweep_orphans()

    async def sweep_orphans(self) -> collect.Collected:
        collected = await collect.collect_orphans(
            self._pool, self._store, older_than_s=self._orphan_after_s, limit=self._orphan_limit
        )
        self._count(collected, reason="orphan")
        self._last_orphan_sweep_at = datetime.now(UTC)
        return collected

    def _count(self, collected: collect.Collected, *, reason: str) -> None:
        if not collected.blobs:
            return
        self._collected.add(collected)
        registry.BLOBS_COLLECTED.labels(reason).inc(collected.blobs)
        registry.BLOB_BYTES_FREED.labels(reason).inc(collected.bytes)
        log.info(
            "files.blobs_collected", reason=reason, count=collected.blobs, bytes=collected.bytes
        )
