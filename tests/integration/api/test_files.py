"""The files API on the real servers: an upload is checked from its bytes before anything is
written, served back byte for byte to its owner or through a signed URL, and nobody else's."""

import asyncio
import hashlib
import io
import os
import threading
import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from PIL import Image

from libs.accounts import NewUser
from services.api.files import intake
from services.api.files.signing import FileUrls
from tests.files_support import encoded, png_bomb
from tests.integration.api.conftest import auth
from tests.integration.api.files_helpers import URL_KEY, FilesApi, files_api, written
from tests.support import ServerUrls

UPLOAD_MAX = 100_000


@pytest.fixture
async def fa(
    servers: ServerUrls, db_pool: "asyncpg.Pool[Any]", tmp_path: Path
) -> AsyncIterator[FilesApi]:
    async with files_api(servers, db_pool, tmp_path, upload_max_bytes=UPLOAD_MAX) as running:
        yield running


def noise(side: int) -> bytes:
    """A PNG that does not compress: about 3 × ``side``² bytes."""
    out = io.BytesIO()
    Image.frombytes("RGB", (side, side), os.urandom(3 * side * side)).save(out, "PNG")
    return out.getvalue()


async def test_an_upload_is_served_back_byte_for_byte(fa: FilesApi, alice: NewUser) -> None:
    data = encoded("PNG")
    r = await fa.upload(alice, data, filename="red dot.png")
    assert r.status_code == 201, r.text
    view = r.json()
    file_id = view["id"]
    assert set(view) == {
        "id", "object", "purpose", "bytes", "media_type", "width", "height", "filename",
        "sha256", "created_at", "expires_at", "url",
    }  # fmt: skip
    sha = hashlib.sha256(data).hexdigest()
    assert (view["object"], view["purpose"], view["media_type"]) == ("file", "upload", "image/png")
    assert (view["bytes"], view["width"], view["height"]) == (len(data), 30, 20)
    assert (view["filename"], view["sha256"]) == ("red dot.png", sha)
    assert view["url"] == f"/files/{file_id}/content"
    assert (await fa.client.get(f"/files/{file_id}", headers=auth(alice))).json() == view

    got = await fa.client.get(view["url"], headers=auth(alice))
    assert got.status_code == 200
    assert got.content == data
    assert got.headers["content-type"] == "image/png"
    assert got.headers["content-length"] == str(len(data))
    assert got.headers["etag"] == f'"{sha}"'
    assert got.headers["cache-control"] == "private, max-age=31536000, immutable"
    assert got.headers["x-content-type-options"] == "nosniff"
    assert got.headers["content-security-policy"] == "default-src 'none'; sandbox"
    assert got.headers["content-disposition"].startswith('inline; filename="red_dot.png"')

    cached = await fa.client.get(view["url"], headers={**auth(alice), "if-none-match": f'"{sha}"'})
    assert cached.status_code == 304
    assert cached.content == b""
    assert cached.headers["etag"] == f'"{sha}"'


async def test_a_signed_url_serves_without_a_key_until_it_expires(
    fa: FilesApi, alice: NewUser
) -> None:
    data = encoded("JPEG")
    file_id = (await fa.upload(alice, data, content_type="image/jpeg")).json()["id"]
    signed = await fa.client.post(f"/files/{file_id}/url", headers=auth(alice))
    assert signed.status_code == 200, signed.text
    url = signed.json()["url"]
    assert url.startswith(f"/files/{file_id}/content?expires=")

    anyone = await fa.client.get(url)
    assert anyone.status_code == 200
    assert anyone.content == data
    assert anyone.headers["content-type"] == "image/jpeg"

    tampered = url[:-1] + ("A" if url[-1] != "A" else "B")
    later = url.replace("expires=", "expires=1")
    other = (await fa.upload(alice, encoded("PNG"))).json()["id"]
    expired, _ = FileUrls(URL_KEY.encode(), ttl_s=1).sign(file_id, now=time.time() - 60)
    for refused in (tampered, later, url.replace(file_id, other), expired, url.split("&")[0]):
        r = await fa.client.get(refused)
        assert r.status_code == 403, refused
        assert r.json()["code"] == "forbidden"
    assert (await fa.client.get(f"/files/{file_id}/content")).status_code == 401


async def test_another_users_file_is_404_on_every_route(
    fa: FilesApi, alice: NewUser, bob: NewUser
) -> None:
    file_id = (await fa.upload(alice, encoded("PNG"))).json()["id"]
    unknown = "file-" + "0" * 32
    for path in (file_id, unknown, "not-an-id"):
        answers = [
            await fa.client.get(f"/files/{path}", headers=auth(bob)),
            await fa.client.get(f"/files/{path}/content", headers=auth(bob)),
            await fa.client.post(f"/files/{path}/url", headers=auth(bob)),
            await fa.client.delete(f"/files/{path}", headers=auth(bob)),
        ]
        for r in answers:
            assert r.status_code == 404, (path, r.request.method, r.request.url)
            assert r.json() == {"detail": "no such file", "code": "not_found"}
    assert (await fa.client.get("/files", headers=auth(bob))).json()["items"] == []
    assert (await fa.client.get(f"/files/{file_id}", headers=auth(alice))).status_code == 200


def _oversized() -> bytes:
    data = noise(200)
    assert len(data) > UPLOAD_MAX
    return data


@pytest.mark.parametrize(
    ("data", "content_type", "status", "says"),
    [
        pytest.param(
            encoded("PNG"), "image/jpeg", 422, "declared as image/jpeg, but its bytes are "
            "image/png", id="png-declared-jpeg",
        ),
        pytest.param(
            b"just some text", "image/png", 422, "not an image of an accepted type",
            id="text-declared-png",
        ),
        pytest.param(_oversized(), "image/png", 413, "the most accepted is 100,000 bytes",
                     id="oversize"),
        pytest.param(png_bomb(), "image/png", 422, "decompression bomb", id="bomb"),
        pytest.param(
            b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "application/pdf", 422,
            "not an image of an accepted type", id="pdf",
        ),
    ],
)  # fmt: skip
async def test_a_refused_upload_leaves_nothing_behind(
    fa: FilesApi,
    alice: NewUser,
    db_pool: "asyncpg.Pool[Any]",
    data: bytes,
    content_type: str,
    status: int,
    says: str,
) -> None:
    r = await fa.upload(alice, data, content_type=content_type)
    assert r.status_code == status, r.text
    assert says in r.json()["detail"]
    assert r.json()["code"] == ("too_large" if status == 413 else "invalid_inputs")
    assert await written(db_pool) == {"files": 0, "blobs": 0, "requests": 0}
    assert fa.objects() == []


async def test_a_body_past_the_limit_is_refused_as_it_arrives(
    fa: FilesApi, alice: NewUser, db_pool: "asyncpg.Pool[Any]"
) -> None:
    """Declared too long: refused before a byte is read; sent without a length: refused once
    the bytes pass the limit (the files' and a plain body's), never held whole."""
    too_long = fa.settings.multipart_max_bytes + 1
    boundary = "relai-test-boundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode()
    headers = {**auth(alice), "content-type": f"multipart/form-data; boundary={boundary}"}

    declared = await fa.client.post("/files", content=head + b"\x00" * too_long, headers=headers)
    assert declared.status_code == 413
    assert declared.json()["code"] == "too_large"

    async def chunks() -> AsyncIterator[bytes]:
        yield head
        for _ in range(too_long // 65536 + 1):
            yield b"\x00" * 65536
            await asyncio.sleep(0)

    streamed = await fa.client.post("/files", content=chunks(), headers=headers)
    assert streamed.status_code == 413
    assert streamed.json()["code"] == "too_large"
    # A JSON body is held to the plain limit on the same routes.
    plain = await fa.client.post(
        "/svc/demo/echo",
        content=b'{"text": "' + b"x" * fa.settings.max_body_bytes + b'"}',
        headers={**auth(alice), "content-type": "application/json"},
    )
    assert plain.status_code == 413
    assert await written(db_pool) == {"files": 0, "blobs": 0, "requests": 0}
    assert fa.objects() == []


async def test_the_same_bytes_twice_are_two_files_over_one_blob(
    fa: FilesApi, alice: NewUser, bob: NewUser, db_pool: "asyncpg.Pool[Any]"
) -> None:
    data = encoded("WEBP")
    first = await fa.upload(alice, data, content_type=None, filename="a.webp")
    second = await fa.upload(bob, data, content_type="application/octet-stream")
    assert first.status_code == second.status_code == 201
    assert first.json()["id"] != second.json()["id"]
    assert first.json()["media_type"] == second.json()["media_type"] == "image/webp"
    assert await written(db_pool) == {"files": 2, "blobs": 1, "requests": 0}
    assert len(fa.objects()) == 1
    assert fa.objects()[0].read_bytes() == data


async def test_uploads_are_listed_newest_first_deleted_and_expire(
    fa: FilesApi, alice: NewUser, db_pool: "asyncpg.Pool[Any]"
) -> None:
    ids = [
        (await fa.upload(alice, encoded("PNG", color=color))).json()["id"]
        for color in ("red", "green", "blue")
    ]
    page = (await fa.client.get("/files?limit=2", headers=auth(alice))).json()
    assert [f["id"] for f in page["items"]] == ids[:0:-1]
    rest = await fa.client.get(f"/files?limit=2&cursor={page['next_cursor']}", headers=auth(alice))
    assert [f["id"] for f in rest.json()["items"]] == ids[:1]
    assert rest.json()["next_cursor"] is None

    deleted = await fa.client.delete(f"/files/{ids[0]}", headers=auth(alice))
    assert deleted.status_code == 204
    assert (await fa.client.get(f"/files/{ids[0]}", headers=auth(alice))).status_code == 404
    # Its blob stays until recon collects it (other files may refer to the same bytes).
    assert await written(db_pool) == {"files": 2, "blobs": 3, "requests": 0}

    ttl = timedelta(seconds=fa.settings.upload_ttl_s)
    kept = (await fa.upload(alice, encoded("GIF"), content_type="image/gif")).json()
    assert _lifetime(kept) == ttl
    longer = await fa.upload(alice, encoded("PNG", color="black"), expires_after="999999999")
    assert _lifetime(longer.json()) == ttl  # never past RELAI_UPLOAD_TTL_S
    brief = await fa.upload(alice, encoded("PNG", color="white"), expires_after="1")
    assert _lifetime(brief.json()) == timedelta(seconds=1)
    await asyncio.sleep(1.2)
    gone = await fa.client.get(f"/files/{brief.json()['id']}", headers=auth(alice))
    assert gone.status_code == 404
    bad = await fa.upload(alice, encoded("PNG"), expires_after="soon")
    assert bad.status_code == 422
    assert bad.json()["fields"] == ["expires_after"]


def _lifetime(view: dict[str, Any]) -> timedelta:
    def at(text: str) -> datetime:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))

    return at(view["expires_at"]) - at(view["created_at"])


async def test_a_file_past_the_plain_body_limit_is_taken_where_files_are(
    servers: ServerUrls, db_pool: "asyncpg.Pool[Any]", tmp_path: Path, alice: NewUser
) -> None:
    """A multipart body larger than RELAI_MAX_BODY_BYTES (but within the files' limit) is taken
    by the routes that take files, declared or streamed; elsewhere it is still too large."""
    big = noise(700)
    async with files_api(
        servers, db_pool, tmp_path, upload_max_bytes=2_000_000, max_body_bytes=1_000_000
    ) as fa:
        assert len(big) > fa.settings.max_body_bytes
        declared = await fa.upload(alice, big)
        assert declared.status_code == 201, declared.text
        assert declared.json()["bytes"] == len(big)

        request = fa.client.build_request(
            "POST", "/files", files={"file": ("big.png", big, "image/png")}, headers=auth(alice)
        )
        body = request.read()

        async def chunks() -> AsyncIterator[bytes]:
            for start in range(0, len(body), 65536):
                yield body[start : start + 65536]

        streamed = await fa.client.post(
            "/files",
            content=chunks(),
            headers={**auth(alice), "content-type": request.headers["content-type"]},
        )
        assert streamed.status_code == 201, streamed.text

        submitted = await fa.client.post(
            "/svc/img/describe",
            data={"prompt": "noise"},
            files={"image": ("big.png", big, "image/png")},
            headers=auth(alice),
        )
        assert submitted.status_code == 202, submitted.text
        elsewhere = await fa.client.post(
            "/ask",
            content=body[: fa.settings.max_body_bytes + 1000],
            headers={**auth(alice), "content-type": request.headers["content-type"]},
        )
        assert elsewhere.status_code == 413
        assert elsewhere.json()["code"] == "too_large"


@pytest.mark.parametrize("decodes", [1, 2])
async def test_no_more_images_are_decoded_at_once_than_allowed(
    servers: ServerUrls,
    db_pool: "asyncpg.Pool[Any]",
    tmp_path: Path,
    alice: NewUser,
    monkeypatch: pytest.MonkeyPatch,
    decodes: int,
) -> None:
    """A burst of uploads waits its turn for ``RELAI_IMAGE_DECODES`` decoding threads, so that
    the API never holds more decoded pictures than that in memory; every upload still succeeds."""
    running = 0
    most = 0
    lock = threading.Lock()
    check = intake._check

    def counted(data: bytes, accept: tuple[str, ...], max_pixels: int) -> intake.CheckedImage:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        try:
            time.sleep(0.05)
            return check(data, accept, max_pixels)
        finally:
            with lock:
                running -= 1

    monkeypatch.setattr(intake, "_check", counted)
    async with files_api(servers, db_pool, tmp_path, image_decodes=decodes) as running_api:
        answers = await asyncio.gather(
            *(running_api.upload(alice, encoded("PNG", (10 + n, 10))) for n in range(8))
        )
    assert [a.status_code for a in answers] == [201] * 8
    assert most == decodes
