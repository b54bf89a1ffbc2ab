"""``/files``: upload an image, list, read and delete your files, serve their bytes (to their
owner, or to anyone with a URL the API signed), and sign such URLs.

An upload is checked whole before anything is written (its size as it arrives, its real type,
pixels and integrity from its bytes, off the event loop), then written in the order that keeps
collection away from it: its blob registered, its bytes stored, its ``files`` row inserted. The
same bytes uploaded twice are two files over one blob. Another user's file and an unknown id
are the same 404 on every route."""

from __future__ import annotations

import re
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.responses import StreamingResponse
from starlette.datastructures import FormData, UploadFile

from libs.catalog.numbers import INT32_MAX
from libs.contracts.files import parse_file_id
from libs.files import uploads
from libs.logs import get_logger
from services.api.auth.dependencies import CurrentUser, current_user
from services.api.deps import PoolDep, SettingsDep
from services.api.errors import Conflict, Forbidden, InvalidInputs, NotFound
from services.api.files import intake
from services.api.files.schemas import (
    CONTENT_RESPONSES,
    UPLOAD_BODY,
    FilePage,
    FileView,
    SignedUrl,
    decode_cursor,
    encode_cursor,
    file_view,
)
from services.api.state import app_state

log = get_logger(__name__)

router = APIRouter(tags=["files"])

NO_SUCH_FILE: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such file, another user's, or an expired one"}
}
_DIGITS = re.compile(r"[0-9]{1,10}")
CACHE_FOREVER = "private, max-age=31536000, immutable"
CONTENT_CSP = "default-src 'none'; sandbox"
_EXTENSIONS = {
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/webp": ".webp",
    "image/gif": ".gif",
}


def _no_such_file() -> NotFound:
    return NotFound("no such file")


def _upload_fields(form: FormData) -> tuple[UploadFile, int | None]:
    unknown = sorted(set(form.keys()) - {"file", "expires_after"})
    if unknown:
        raise InvalidInputs("unknown fields: " + ", ".join(unknown), unknown=unknown)
    part = form.get("file")
    if part is None:
        raise InvalidInputs("missing fields: file", missing=["file"])
    if not isinstance(part, UploadFile):
        raise InvalidInputs(
            "file must be a file part (with a filename in its Content-Disposition)",
            fields=["file"],
        )
    raw = form.get("expires_after")
    if raw is None:
        return part, None
    if not isinstance(raw, str) or not _DIGITS.fullmatch(raw) or not 1 <= int(raw) <= INT32_MAX:
        raise InvalidInputs(
            f"expires_after must be a whole number of seconds from 1 to {INT32_MAX}",
            fields=["expires_after"],
        )
    return part, int(raw)


@router.post(
    "/files",
    status_code=status.HTTP_201_CREATED,
    response_model=FileView,
    responses={
        400: {"description": "A malformed multipart/form-data body"},
        413: {"description": "A file larger than RELAI_UPLOAD_MAX_BYTES"},
        422: {
            "description": "No file part, unknown fields, or a file that is not a whole image "
            "of an accepted type (from its bytes) within the pixel limit"
        },
    },
    openapi_extra={"requestBody": UPLOAD_BODY},
)
async def upload(request: Request, user: CurrentUser) -> FileView:
    """Upload an image (a ``multipart/form-data`` body with the part ``file``); 201 with the
    file. Its type is recognised from its bytes, whatever was declared. It is kept
    ``RELAI_UPLOAD_TTL_S`` (``expires_after``: less), for submissions to name by its id."""
    state = app_state(request)
    settings = state.settings
    # Read after authentication: the caller is known before the body is.
    async with request.form(max_files=1, max_fields=8, max_part_size=1024) as form:
        part, expires_after = _upload_fields(form)
        data = await intake.read_part(part, limit=settings.upload_max_bytes, name="file")
        filename = intake.clean_filename(part.filename)
        image = await intake.check_image(data, name="file", decoders=state.decoders)
        intake.check_declared(part, image, name="file")
    ttl = min(expires_after or settings.upload_ttl_s, settings.upload_ttl_s)
    await uploads.register_blobs(state.pool, [(image.sha256, len(data))])
    await state.store.put(data)
    row = await uploads.insert_upload(
        state.pool,
        user_id=user.id,
        sha256=image.sha256,
        media_type=image.info.media_type,
        size=len(data),
        width=image.info.width,
        height=image.info.height,
        filename=filename,
        ttl_s=ttl,
    )
    return file_view(row)


@router.get(
    "/files",
    response_model=FilePage,
    responses={400: {"description": "A cursor this API did not return"}},
)
async def list_files(
    user: CurrentUser,
    pool: PoolDep,
    settings: SettingsDep,
    limit: Annotated[int, Query(ge=1)] = 50,
    cursor: str | None = None,
) -> FilePage:
    """Your uploads, newest first (a request's input and result files are listed with it)."""
    limit = min(limit, settings.page_size_max)
    before = decode_cursor(cursor) if cursor else None
    rows = await uploads.list_uploads(pool, user.id, before=before, limit=limit + 1)
    items = [file_view(r) for r in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        next_cursor = encode_cursor(last["created_at"], last["id"])
    return FilePage(items=items, next_cursor=next_cursor)


async def _own_file(pool: PoolDep, file_id: str, user: CurrentUser) -> Any:
    if parse_file_id(file_id) is None:
        raise _no_such_file()
    row = await uploads.get_user_file(pool, file_id, user.id)
    if row is None:
        raise _no_such_file()
    return row


@router.get("/files/{file_id}", response_model=FileView, responses=NO_SUCH_FILE)
async def get_file(file_id: str, user: CurrentUser, pool: PoolDep) -> FileView:
    """One of your files: an upload, or an input or result of one of your requests."""
    return file_view(await _own_file(pool, file_id, user))


@router.delete(
    "/files/{file_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={
        **NO_SUCH_FILE,
        409: {"description": "A request's input or result: it goes with the request's results"},
    },
)
async def delete_file(file_id: str, user: CurrentUser, pool: PoolDep) -> None:
    """Delete one of your uploads (requests that used it keep their own copy)."""
    row = await _own_file(pool, file_id, user)
    if row["purpose"] != "upload":
        raise Conflict(
            f"{file_id} is a request's {row['purpose']} file: it is deleted with the request's "
            "results"
        )
    if not await uploads.delete_upload(pool, file_id, user.id):
        raise _no_such_file()  # deleted meanwhile


@router.post("/files/{file_id}/url", response_model=SignedUrl, responses=NO_SUCH_FILE)
async def sign_url(file_id: str, request: Request, user: CurrentUser, pool: PoolDep) -> SignedUrl:
    """A URL that serves one of your files to anyone who has it, without a key, for
    ``RELAI_FILE_URL_TTL_S``: to put in a page or hand to another service."""
    await _own_file(pool, file_id, user)
    url, expires_at = app_state(request).file_urls.sign(file_id)
    return SignedUrl(url=url, expires_at=expires_at)


def _matches(if_none_match: str | None, etag: str) -> bool:
    if if_none_match is None:
        return False
    tags = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
    return "*" in tags or etag in tags


def _disposition(row: Any) -> str:
    name = row["filename"] or row["id"] + _EXTENSIONS.get(row["media_type"], "")
    ascii_name = re.sub(r"[^A-Za-z0-9._-]", "_", name)
    return f"inline; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"


@router.get(
    "/files/{file_id}/content",
    response_class=StreamingResponse,
    responses=CONTENT_RESPONSES,
    openapi_extra={"security": [{"bearer": []}, {}]},
)
async def content(
    file_id: str,
    request: Request,
    expires: int | None = None,
    signature: str | None = None,
) -> Response:
    """The file's bytes: for its owner (``Authorization``), or for anyone with a URL from
    ``POST /files/{id}/url`` (``expires`` and ``signature``; 403 once expired or altered). 304
    when ``If-None-Match`` names its ``ETag``. Served as the type recognised when it was
    stored, never to be run as a page (``Content-Security-Policy: sandbox``, ``nosniff``)."""
    state = app_state(request)
    if expires is not None or signature is not None:
        if expires is None or signature is None:
            raise Forbidden("a signed URL needs both expires and signature")
        if not state.file_urls.verify(file_id, expires, signature):
            raise Forbidden("the signed URL is not valid, or has expired")
        row = await uploads.get_file(state.pool, file_id) if parse_file_id(file_id) else None
        if row is None:
            raise _no_such_file()
    else:
        row = await _own_file(state.pool, file_id, await current_user(request))
    etag = f'"{row["sha256"]}"'
    headers = {"ETag": etag, "Cache-Control": CACHE_FOREVER}
    if _matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    try:
        chunks = await state.store.stream(row["sha256"])
    except FileNotFoundError:
        log.error("file.bytes_missing", file_id=file_id, sha256=row["sha256"])
        raise _no_such_file() from None
    headers |= {
        "Content-Length": str(row["bytes"]),
        "Content-Disposition": _disposition(row),
        "Content-Security-Policy": CONTENT_CSP,
    }
    return StreamingResponse(chunks, media_type=row["media_type"], headers=headers)
