"""The rules of webhooks: at most ``MAX_ENDPOINTS`` endpoints per user, every URL through the
SSRF guard before it is written, secrets shown at creation and rotation only, the one-off URL a
request names checked as endpoints are (and signed by a secret its owner has), deliveries queued
only through ``libs.outbox``, and the pages of deliveries."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from libs import outbox
from libs.contracts.webhooks import webhook_id
from libs.db import PgConnection, PgPool
from libs.security.ssrf import UrlPolicy
from libs.webhooks import new_secret
from services.api.errors import BadRequest, Conflict, InvalidInputs, NotFound
from services.api.webhooks import repository
from services.api.webhooks.schemas import (
    AttemptView,
    DeliveryPage,
    DeliveryView,
    EndpointBody,
    EndpointPatch,
    EndpointView,
    EndpointWithSecret,
    Queued,
    RotateBody,
    SecretWithValue,
)
from services.api.webhooks.urls import WEBHOOK_URL_HEADER, check_webhook_url

MAX_ENDPOINTS = 20
"""The most endpoints one user may have."""
DISABLED_BY_OWNER = "disabled by its owner"
NO_ENDPOINT = "no such webhook endpoint"
NO_DELIVERY = "no such webhook delivery"
NO_SECRET = (
    f"{WEBHOOK_URL_HEADER}: one-off URLs are signed with your one-off secret, which you have not "
    "created yet; POST /webhooks/secret creates it (and shows it once)"
)


def endpoint_view(row: asyncpg.Record) -> EndpointView:
    return EndpointView.model_validate(dict(row))


def with_secret(row: asyncpg.Record) -> EndpointWithSecret:
    return EndpointWithSecret.model_validate(dict(row))


async def create_endpoint(
    pool: PgPool, policy: UrlPolicy, *, user_id: uuid.UUID, body: EndpointBody
) -> EndpointWithSecret:
    """A new endpoint and its secret; 422 for a URL the guard refuses, 409 past the cap."""
    await check_webhook_url(body.url, policy, field="url")
    async with pool.acquire() as conn, conn.transaction():
        await repository.lock_endpoints(conn, user_id)
        if await repository.count_endpoints(conn, user_id) >= MAX_ENDPOINTS:
            raise Conflict(
                f"you have {MAX_ENDPOINTS} webhook endpoints, the most allowed; delete one or "
                "subscribe one to more events",
                limit=MAX_ENDPOINTS,
            )
        row = await repository.insert_endpoint(
            conn,
            user_id=user_id,
            url=body.url,
            events=body.events,
            description=body.description,
            secret=new_secret(),
        )
    return with_secret(row)


async def update_endpoint(
    pool: PgPool,
    policy: UrlPolicy,
    *,
    user_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    body: EndpointPatch,
) -> EndpointView:
    if body.url is not None:
        await check_webhook_url(body.url, policy, field="url")
    row = await repository.update_endpoint(
        pool,
        user_id,
        endpoint_id,
        url=body.url,
        events=body.events,
        description=body.description,
        enabled=body.enabled,
        disabled_reason=DISABLED_BY_OWNER,
    )
    if row is None:
        raise NotFound(NO_ENDPOINT)
    return endpoint_view(row)


async def rotate_endpoint(
    pool: PgPool, *, user_id: uuid.UUID, endpoint_id: uuid.UUID, body: RotateBody | None
) -> EndpointWithSecret:
    """A new secret for the endpoint; the old one signs beside it for ``overlap_s``."""
    overlap_s = (body or RotateBody()).overlap_s
    row = await repository.rotate_endpoint(
        pool, user_id, endpoint_id, secret=new_secret(), overlap_s=overlap_s
    )
    if row is None:
        raise NotFound(NO_ENDPOINT)
    return with_secret(row)


async def put_secret(
    pool: PgPool, *, user_id: uuid.UUID, body: RotateBody | None
) -> tuple[SecretWithValue, bool]:
    """The user's one-off secret, new or rotated (then the old one signs beside it for
    ``overlap_s``); True when it is new."""
    overlap_s = (body or RotateBody()).overlap_s
    row = await repository.put_secret(pool, user_id, secret=new_secret(), overlap_s=overlap_s)
    return SecretWithValue.model_validate(dict(row)), bool(row["created"])


async def check_one_off_url(
    db: PgPool | PgConnection, policy: UrlPolicy, *, user_id: uuid.UUID, url: str
) -> None:
    """Refuse (422) a one-off URL named at submit that endpoints could not have, or that its
    owner has no secret to sign for."""
    await check_webhook_url(url, policy, field=f"header {WEBHOOK_URL_HEADER}")
    if not await repository.has_secret(db, user_id):
        raise InvalidInputs(NO_SECRET, fields=[f"header {WEBHOOK_URL_HEADER}"])


async def ping(conn: PgConnection, *, user_id: uuid.UUID, endpoint_id: uuid.UUID) -> Queued:
    delivery = await outbox.queue_ping(conn, user_id=user_id, endpoint_id=endpoint_id)
    if delivery is None:
        raise NotFound(NO_ENDPOINT)
    return Queued(id=delivery, webhook_id=webhook_id(delivery))


async def redeliver(
    conn: PgConnection,
    *,
    user_id: uuid.UUID,
    delivery_id: uuid.UUID,
    endpoint_id: uuid.UUID | None = None,
) -> Queued:
    """Send a delivery again, same id and body; 404 when the caller has no such delivery (to
    ``endpoint_id``, when given), 409 while it is still pending."""
    row = await repository.get_delivery(conn, user_id, delivery_id, endpoint_id=endpoint_id)
    if row is None:
        raise NotFound(NO_DELIVERY)
    if not await outbox.redeliver(conn, user_id=user_id, delivery_id=delivery_id):
        raise Conflict(
            "the delivery is still pending: it is being tried, and may be redelivered once "
            "it was delivered or given up",
            status="pending",
        )
    return Queued(id=delivery_id, webhook_id=webhook_id(delivery_id))


async def delivery(
    pool: PgPool, *, user_id: uuid.UUID, delivery_id: str, endpoint_id: uuid.UUID | None = None
) -> DeliveryView:
    """One delivery of the user's (to ``endpoint_id``, when given), with its attempts."""
    row = await repository.get_delivery(
        pool, user_id, parse_delivery_id(delivery_id), endpoint_id=endpoint_id
    )
    if row is None:
        raise NotFound(NO_DELIVERY)
    (view,) = await delivery_views(pool, [row])
    return view


def parse_delivery_id(value: str) -> uuid.UUID:
    """A delivery's id, as its uuid or as its ``webhook-id`` (``msg_<hex>``)."""
    try:
        return uuid.UUID(value.removeprefix("msg_"))
    except ValueError:
        raise NotFound(NO_DELIVERY) from None


def encode_cursor(created_at: datetime, delivery_id: uuid.UUID) -> str:
    raw = f"{created_at.isoformat()}|{delivery_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created_at, delivery_id = raw.split("|")
        when = datetime.fromisoformat(created_at)
        if when.tzinfo is None:
            raise ValueError("no time zone")
        return when, uuid.UUID(delivery_id)
    except ValueError as exc:
        raise BadRequest("cursor is not one this API returned") from exc


async def deliveries_page(
    pool: PgPool,
    *,
    user_id: uuid.UUID,
    limit: int,
    cursor: str | None,
    endpoint_id: uuid.UUID | None = None,
    request_id: uuid.UUID | None = None,
    status: str | None = None,
) -> DeliveryPage:
    """A page of the user's deliveries (newest first) with their attempts."""
    before = decode_cursor(cursor) if cursor else None
    rows = await repository.list_deliveries(
        pool,
        user_id,
        endpoint_id=endpoint_id,
        request_id=request_id,
        status=status,
        before=before,
        limit=limit + 1,
    )
    items = await delivery_views(pool, rows[:limit])
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        next_cursor = encode_cursor(last["created_at"], last["id"])
    return DeliveryPage(items=items, next_cursor=next_cursor)


async def delivery_views(pool: PgPool, rows: Sequence[asyncpg.Record]) -> list[DeliveryView]:
    attempts: dict[uuid.UUID, list[AttemptView]] = {row["id"]: [] for row in rows}
    for attempt in await repository.attempts_of(pool, list(attempts)):
        attempts[attempt["delivery_id"]].append(AttemptView.model_validate(dict(attempt)))
    return [_delivery_view(row, attempts[row["id"]]) for row in rows]


def _delivery_view(row: asyncpg.Record, attempts: list[AttemptView]) -> DeliveryView:
    fields: dict[str, Any] = dict(row)
    fields["payload"] = orjson.loads(fields["payload"])
    return DeliveryView.model_validate(
        {**fields, "webhook_id": webhook_id(row["id"]), "attempts": attempts}
    )
