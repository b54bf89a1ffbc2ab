"""Which requests still have a message in flight on Redis."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import cast

import orjson
from redis.asyncio import Redis

from libs.contracts import LIMITS_LIVE_KEY
from libs.contracts.streams import MESSAGE_FIELD
from libs.streams import Entry


async def live_request_ids(
    redis: Redis, streams: Iterable[str], *, chunk: int = 1000
) -> set[uuid.UUID]:
    """Request ids named by any entry of ``streams``, read whole with ``XRANGE`` in chunks, and
    those whose job waits for or runs under an integration's limits (off the streams)."""
    live: set[uuid.UUID] = set()
    for member in await redis.smembers(LIMITS_LIVE_KEY):
        try:
            live.add(uuid.UUID(member.decode() if isinstance(member, bytes) else member))
        except ValueError:
            pass
    for stream in streams:
        start: bytes = b"-"
        while True:
            reply = await redis.xrange(stream, min=start, max="+", count=chunk)
            entries = cast(list[Entry], reply or [])
            for _entry_id, fields in entries:
                request_id = _request_id(fields)
                if request_id is not None:
                    live.add(request_id)
            if len(entries) < chunk:
                break
            start = b"(" + entries[-1][0]
    return live


def _request_id(fields: dict[bytes, bytes]) -> uuid.UUID | None:
    try:
        return uuid.UUID(orjson.loads(fields[MESSAGE_FIELD])["request_id"])
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
