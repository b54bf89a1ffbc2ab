"""Webhook helpers for the tests: endpoints and the one-off secret written as the API writes
them, the deliveries queued, and their payload read as a receiver reads it."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from libs.contracts.webhooks import REQUEST_EVENTS, webhook_id
from libs.webhooks import new_secret
from services.api.webhooks import repository

HOOK = "https://93.184.216.34/hooks/relai"
"""A public address: no name to resolve, and nothing is sent to it in these tests."""


async def add_endpoint(
    pool: asyncpg.Pool[Any],
    user_id: uuid.UUID,
    *,
    events: Sequence[str] = REQUEST_EVENTS,
    url: str = HOOK,
    enabled: bool = True,
) -> uuid.UUID:
    row = await repository.insert_endpoint(
        pool, user_id=user_id, url=url, events=events, description="", secret=new_secret()
    )
    if not enabled:
        await pool.execute("UPDATE webhook_endpoints SET enabled = false WHERE id = $1", row["id"])
    endpoint: uuid.UUID = row["id"]
    return endpoint


async def add_one_off_secret(pool: asyncpg.Pool[Any], user_id: uuid.UUID) -> str:
    row = await repository.put_secret(pool, user_id, secret=new_secret(), overlap_s=0)
    secret: str = row["secret"]
    return secret


async def deliveries(pool: asyncpg.Pool[Any], **where: Any) -> list[asyncpg.Record]:
    """The deliveries queued (those matching ``where``: column = value), oldest first."""
    conditions = " AND ".join(f"{column} = ${n}" for n, column in enumerate(where, 1))
    return await pool.fetch(
        "SELECT * FROM webhook_deliveries"
        + (f" WHERE {conditions}" if conditions else "")
        + " ORDER BY created_at, event, endpoint_id NULLS LAST",
        *where.values(),
    )


def events_of(rows: Sequence[asyncpg.Record]) -> list[tuple[Any, ...]]:
    """``(endpoint_id or url, request_id, event)`` of each delivery, sorted."""
    return sorted(
        ((str(r["endpoint_id"] or r["url"]), r["request_id"], r["event"]) for r in rows),
        key=str,
    )


def payload_of(row: asyncpg.Record, *, step: int | None = None) -> dict[str, Any]:
    """The delivery's body, checked against the documented shape."""
    payload: dict[str, Any] = orjson.loads(row["payload"])
    assert set(payload) == {"id", "object", "type", "created_at", "timestamp", "data"}
    assert payload["id"] == webhook_id(row["id"])
    assert (payload["object"], payload["type"]) == ("event", row["event"])
    assert isinstance(payload["created_at"], int)
    stamp = datetime.fromisoformat(payload["timestamp"])
    assert int(stamp.timestamp()) == payload["created_at"]
    data = payload["data"]
    request_id = str(row["request_id"])
    status = row["event"].split(".", 1)[1]
    expected = {"id", "object", "status", "created_at", "finished_at", "links"}
    if step is None:
        assert data["object"] == "request"
    else:
        expected.add("step")
        assert (data["object"], data["step"]) == ("request.step", step)
    assert set(data) == expected
    assert (data["id"], data["status"]) == (request_id, status)
    assert data["links"] == {"self": f"/svc/request/{request_id}"}
    assert datetime.fromisoformat(data["created_at"]) <= datetime.fromisoformat(data["finished_at"])
    return payload
