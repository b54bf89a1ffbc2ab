"""Signed file URLs: ``/files/<id>/content?expires=<unix>&signature=<sig>``, where ``sig`` is the
HMAC-SHA256 of the id and the expiry under ``RELAI_FILE_URL_KEY`` (urlsafe base64, unpadded).
Anyone holding such a URL may read that file until it expires, without a key: to hand to a
browser or another service."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from datetime import UTC, datetime

from services.api.settings import ApiSettings


def content_path(file_id: str) -> str:
    """Where a file's bytes are served (to its owner, or with a signature)."""
    return f"/files/{file_id}/content"


class FileUrls:
    def __init__(self, key: bytes, *, ttl_s: int) -> None:
        self._key = key
        self.ttl_s = ttl_s

    @classmethod
    def from_settings(cls, settings: ApiSettings) -> FileUrls:
        """Under ``RELAI_FILE_URL_KEY``, else a key of this process's own (which no other
        process knows)."""
        if settings.file_url_key is not None:
            key = settings.file_url_key.get_secret_value().encode()
        else:
            key = secrets.token_bytes(32)
        return cls(key, ttl_s=settings.file_url_ttl_s)

    def _signature(self, file_id: str, expires: int) -> str:
        digest = hmac.new(self._key, f"{file_id}\n{expires}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def sign(self, file_id: str, *, now: float | None = None) -> tuple[str, datetime]:
        """A URL (a path with its query) that serves ``file_id`` for ``ttl_s``, and when it
        stops."""
        expires = int(now if now is not None else time.time()) + self.ttl_s
        signature = self._signature(file_id, expires)
        url = f"{content_path(file_id)}?expires={expires}&signature={signature}"
        return url, datetime.fromtimestamp(expires, UTC)

    def verify(
        self, file_id: str, expires: int, signature: str, *, now: float | None = None
    ) -> bool:
        """Whether the URL was signed here for ``file_id`` and has not expired."""
        if expires < (now if now is not None else time.time()):
            return False
        return hmac.compare_digest(
            self._signature(file_id, expires).encode(), signature.encode("utf-8", "replace")
        )
