"""Single-use WebSocket tickets: ``POST /ws/ticket`` trades a credential for a short-lived
ticket that a browser passes as the subprotocols ``ticket, <ticket>``. Redis holds the caller
under the ticket's hash (never the ticket itself) until it is redeemed or expires; redeeming
deletes it (``GETDEL``), so a ticket opens one socket."""

from __future__ import annotations

import hashlib
import secrets
import uuid

import orjson
from redis.asyncio import Redis

from services.api.auth.service import Principal

KEY_PREFIX = "relai:ws-ticket:"


def _key(ticket: str) -> str:
    return KEY_PREFIX + hashlib.sha256(ticket.encode()).hexdigest()


async def issue(redis: Redis, principal: Principal, *, ttl_s: int) -> str:
    ticket = "wst_" + secrets.token_urlsafe(32)
    value = orjson.dumps(
        {
            "id": str(principal.id),
            "name": principal.name,
            "role": principal.role,
            "key_hash": principal.key_hash.hex() if principal.key_hash is not None else None,
            "expires_at": principal.expires_at,
        }
    )
    await redis.set(_key(ticket), value, ex=ttl_s)
    return ticket


async def redeem(redis: Redis, ticket: str) -> Principal | None:
    """The caller the ticket was issued to, once; None for an unknown, used or expired one."""
    value = await redis.getdel(_key(ticket))
    if value is None:
        return None
    data = orjson.loads(value)
    return Principal(
        id=uuid.UUID(data["id"]),
        name=data["name"],
        role=data["role"],
        key_hash=bytes.fromhex(data["key_hash"]) if data["key_hash"] else None,
        expires_at=data["expires_at"],
    )
