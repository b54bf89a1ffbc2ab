"""The one interface both stores implement, and what they hand back."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from libs.config.errors import ChecksumError

NOTIFY_CHANNEL = "relai_config"
"""Postgres channel notified with the config id whenever a version is activated."""


def checksum(document: str) -> str:
    """``sha256:<hex>`` of a stored document's UTF-8 text."""
    return "sha256:" + hashlib.sha256(document.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class StoredVersion:
    config_id: str
    version: str
    document: str
    """The sealed YAML: secrets are Fernet tokens, ``!ENV`` values are references."""
    checksum: str
    author: str
    created_at: datetime
    active: bool = False

    def verified(self) -> str:
        """The document, once it is known to match its checksum."""
        if checksum(self.document) != self.checksum:
            raise ChecksumError(self.config_id, self.version)
        return self.document


@dataclass(frozen=True, slots=True)
class ConfigSummary:
    config_id: str
    active_version: str | None
    latest_version: str
    versions: int
    updated_at: datetime


class ConfigStore(Protocol):
    """Every uploaded version of every config, and which one of each is active.

    Versions are listed in upload order. ``activate`` and ``rollback`` keep a history: a
    rollback returns to the version that was active before the current activation, so repeated
    rollbacks walk further back.
    """

    async def upload(
        self, config_id: str, document: str, *, author: str, version: str | None = None
    ) -> StoredVersion:
        """Store a new version (``version`` or the next free number); ``VersionExistsError``
        if ``version`` is taken."""
        ...

    async def get(self, config_id: str, version: str | None = None) -> StoredVersion:
        """One version, or the active one; ``UnknownConfigError`` if there is none."""
        ...

    async def versions(self, config_id: str) -> list[StoredVersion]:
        """Every version of ``config_id``, oldest first; ``UnknownConfigError`` if none."""
        ...

    async def summaries(self) -> list[ConfigSummary]:
        """Every config id, sorted."""
        ...

    async def active_versions(self, config_ids: Collection[str]) -> dict[str, str]:
        """The active version of each of ``config_ids`` that has one (one cheap query)."""
        ...

    async def activate(self, config_id: str, version: str, *, author: str) -> None: ...

    async def rollback(self, config_id: str, *, author: str) -> str:
        """Activate the version active before the current activation; return it."""
        ...

    async def rewrite_all(self, transform: Callable[[StoredVersion], str]) -> int:
        """Replace every version's document by ``transform(version)`` (checksums follow),
        all or nothing; return how many were rewritten."""
        ...

    async def watch(self, on_change: Callable[[str], None]) -> None:
        """Call ``on_change(config_id)`` whenever a version is activated, until cancelled.
        Returns at once where the store cannot push changes (callers poll)."""
        ...

    async def close(self) -> None: ...
