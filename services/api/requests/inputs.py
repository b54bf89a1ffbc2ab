"""What a submission to an offer sends: its template's variables, and its file inputs, as a
JSON object (a file input's value: the id of one of the caller's files) or as a
``multipart/form-data`` body (text fields for the variables, a file part per file input, or
its text field holding a file's id). Everything is checked before anything is written, and
what is wrong is a 4xx naming it."""

from __future__ import annotations

from typing import Any

from starlette.datastructures import UploadFile
from starlette.requests import Request

from libs.catalog.file_inputs import FILE_INPUTS_MAX
from services.api.auth.service import Principal
from services.api.catalog.service import Offer
from services.api.errors import InvalidInputs, TooLarge
from services.api.files import intake
from services.api.hardening import MULTIPART, read_limited
from services.api.requests.service import json_object
from services.api.state import app_state
from services.api.submission import SubmittedFile, check_string_fields

MAX_FIELDS = 100
"""The most text fields a multipart submission may have (an offer's variables are far fewer)."""


async def offer_inputs(
    request: Request, offer: Offer, user: Principal
) -> tuple[dict[str, str], tuple[SubmittedFile, ...]]:
    """The submission's variables and (checked) input files."""
    content_type = request.headers.get("content-type", "")
    if content_type.encode("latin-1", "replace").lower().startswith(MULTIPART):
        return await _multipart(request, offer, user)
    body = await read_limited(request, app_state(request).settings.max_body_bytes)
    data = json_object(body, offer)
    if not offer.files:
        check_string_fields(data, offer.template.variables, noun="fields")
        return data, ()
    ids = {name: data.pop(name) for name in offer.files if name in data}
    check_string_fields(data, offer.template.variables, noun="fields")
    _no_missing_files(offer, set(ids))
    files = await intake.referenced(app_state(request).pool, user.id, ids, offer.files)
    return data, tuple(files)


def _no_missing_files(offer: Offer, given: set[str]) -> None:
    missing = [name for name in offer.required_files if name not in given]
    if missing:
        raise InvalidInputs("missing files: " + ", ".join(missing), missing=missing)


async def _multipart(
    request: Request, offer: Offer, user: Principal
) -> tuple[dict[str, str], tuple[SubmittedFile, ...]]:
    settings = app_state(request).settings
    decoders = app_state(request).decoders
    async with request.form(
        max_files=FILE_INPUTS_MAX, max_fields=MAX_FIELDS, max_part_size=settings.max_body_bytes
    ) as form:
        text: dict[str, Any] = {}
        parts: dict[str, UploadFile] = {}
        twice: list[str] = []
        for key, value in form.multi_items():
            if key in text or key in parts:
                twice.append(key)
            if isinstance(value, UploadFile):
                parts[key] = value
            else:
                text[key] = value
        if twice:
            raise InvalidInputs("fields given twice: " + ", ".join(sorted(set(twice))))
        ids = {name: text.pop(name) for name in offer.files if name in text}
        variables = offer.template.variables
        not_text = sorted(name for name in parts if name in variables)
        if not_text:
            raise InvalidInputs(
                "fields must be text, not files: " + ", ".join(not_text), not_strings=not_text
            )
        unknown = sorted(name for name in parts if name not in offer.files)
        if unknown:
            takes = ", ".join(offer.files) if offer.files else "none"
            raise InvalidInputs(
                f"unknown files: {', '.join(unknown)} (this offer takes: {takes})",
                unknown=unknown,
            )
        check_string_fields(text, variables, noun="fields")
        _no_missing_files(offer, set(parts) | set(ids))
        total = sum(part.size or 0 for part in parts.values())
        if total > settings.upload_max_bytes:
            raise TooLarge(
                f"the files add up to {total:,} bytes; the most one submission may send is "
                f"{settings.upload_max_bytes:,} (upload them first: POST /files)",
                limit=settings.upload_max_bytes,
            )
        files = [
            await intake.checked_part(part, name, offer.files[name], decoders=decoders)
            for name, part in parts.items()
        ]
    files += await intake.referenced(app_state(request).pool, user.id, ids, offer.files)
    return text, tuple(files)
