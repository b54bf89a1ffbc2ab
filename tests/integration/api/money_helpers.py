"""What the money tests of the API read back: a request's ledger movements, a user's wallet,
and a request waited for until it ends, as its owner sees it over HTTP."""

import asyncio
import time
import uuid
from typing import Any

import asyncpg

from libs.accounts import NewUser
from tests.integration.api.conftest import Api, auth


async def ledger_of(pool: "asyncpg.Pool[Any]", request_id: str) -> dict[str, int]:
    """The request's movements, by kind (at most one of each per request)."""
    rows = await pool.fetch(
        "SELECT kind, amount FROM credit_ledger WHERE request_id = $1", uuid.UUID(request_id)
    )
    return {r["kind"]: r["amount"] for r in rows}


async def wallet_of(pool: "asyncpg.Pool[Any]", user: NewUser) -> tuple[int, int]:
    """(balance, reserved)."""
    row = await pool.fetchrow("SELECT balance, reserved FROM users WHERE id = $1", user.id)
    assert row is not None
    return row["balance"], row["reserved"]


async def ended(api: Api, user: NewUser, request_id: str) -> dict[str, Any]:
    """The request once it is neither pending nor running (10 s at most)."""
    deadline = time.monotonic() + 10
    while True:
        body: dict[str, Any] = (
            await api.client.get(f"/svc/request/{request_id}", headers=auth(user))
        ).json()
        if body["status"] not in ("pending", "running"):
            return body
        assert time.monotonic() < deadline, body
        await asyncio.sleep(0.05)
