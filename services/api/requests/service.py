"""Requests to single offers: their inputs, the offer behind ``POST /ask``, and the cursors of
the request list (what a submission buys is the core's ``offer_order``)."""

from __future__ import annotations

import base64
import uuid
from datetime import datetime
from typing import Any

import orjson

from libs.config import ApiConfig, ConfigWatcher
from services.api.catalog.service import Offer
from services.api.errors import BadRequest
from services.api.submission import check_string_fields


def json_object(body: bytes, offer: Offer) -> dict[str, Any]:
    """The body as a JSON object, or a 400 saying what it should be."""
    try:
        data = orjson.loads(body or b"null")
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"body is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        fields = [*offer.template.variables, *offer.files]
        raise BadRequest("body must be a JSON object with the fields: " + ", ".join(fields))
    return data


def parse_inputs(body: bytes, offer: Offer) -> dict[str, str]:
    """The body as the template's variables, or a 4xx naming what is wrong."""
    data = json_object(body, offer)
    check_string_fields(data, offer.template.variables, noun="fields")
    return data


def encode_cursor(created_at: datetime, request_id: uuid.UUID) -> str:
    raw = f"{created_at.isoformat()}|{request_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created_at, request_id = raw.split("|")
        return datetime.fromisoformat(created_at), uuid.UUID(request_id)
    except ValueError as exc:
        raise BadRequest("cursor is not one this API returned") from exc


def ask_offer(config: ConfigWatcher | None, fallback: str) -> str:
    """``service/action`` behind ``POST /ask``: the active config ``api`` names it, or the
    setting ``RELAI_ASK_OFFER`` does."""
    loaded = config.get("api") if config is not None else None
    if loaded is not None and isinstance(loaded.data, ApiConfig) and loaded.data.ask_offer:
        return loaded.data.ask_offer
    return fallback
