"""An API serving the files catalog, with its blob store in the test's directory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from libs.accounts import NewUser
from libs.catalog import apply_catalog
from services.api.settings import ApiSettings
from tests.files_support import FILES_CATALOG
from tests.integration.api.conftest import Api, auth, serving, settings_for
from tests.support import ServerUrls

URL_KEY = "k" * 40


@dataclass
class FilesApi:
    api: Api
    settings: ApiSettings
    blobs: Path

    @property
    def client(self) -> httpx.AsyncClient:
        return self.api.client

    def objects(self) -> list[Path]:
        """The blobs in the store."""
        return sorted(p for p in self.blobs.rglob("*") if p.is_file())

    async def upload(
        self,
        user: NewUser,
        data: bytes,
        *,
        filename: str = "picture.png",
        content_type: str | None = "image/png",
        **fields: str,
    ) -> httpx.Response:
        part = (filename, data) if content_type is None else (filename, data, content_type)
        return await self.client.post(
            "/files", files={"file": part}, data=fields, headers=auth(user)
        )


@asynccontextmanager
async def files_api(
    servers: ServerUrls, pool: asyncpg.Pool[Any], tmp_path: Path, **overrides: Any
) -> AsyncIterator[FilesApi]:
    async with pool.acquire() as conn:
        await apply_catalog(conn, FILES_CATALOG)
    settings = settings_for(
        servers, blob_url=str(tmp_path / "blobs"), file_url_key=URL_KEY, **overrides
    )
    async with serving(settings) as api:
        yield FilesApi(api, settings, tmp_path / "blobs")


async def written(pool: asyncpg.Pool[Any]) -> dict[str, int]:
    """How many files, blobs and requests there are."""
    row = await pool.fetchrow(
        "SELECT (SELECT count(*) FROM files) AS files, (SELECT count(*) FROM blobs) AS blobs, "
        "(SELECT count(*) FROM requests) AS requests"
    )
    assert row is not None
    return dict(row)
