"""Health figures read from Redis: each stream's length and its consumer groups."""

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from services.recon.health.schemas import GroupInfo, StreamInfo

LIVE_IDLE_MS = 10_000
"""A consumer that has not read for this long is not counted live: a worker or an API process
reads at least every few seconds (its blocking read times out), a dead one's entry lingers."""


async def read_stream(redis: Redis, stream: str) -> StreamInfo:
    try:
        groups = await redis.xinfo_groups(stream)
    except ResponseError as exc:
        if "no such key" not in str(exc).lower():
            raise
        return StreamInfo(status="absent", length=0, groups={})
    length = await redis.xlen(stream)
    return StreamInfo(
        status="present",
        length=length,
        groups={
            _text(group["name"]): GroupInfo(
                pending=group["pending"],
                consumers=group["consumers"],
                live_consumers=await _live_consumers(redis, stream, group["name"]),
                lag=group.get("lag"),
            )
            for group in groups
        },
    )


async def _live_consumers(redis: Redis, stream: str, group: bytes | str) -> int:
    consumers = await redis.xinfo_consumers(stream, group)
    return sum(1 for consumer in consumers if consumer["idle"] < LIVE_IDLE_MS)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
