"""Health figures read from Redis: each stream's length and its consumer groups."""

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from services.recon.health.schemas import GroupInfo, StreamInfo


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
                pending=group["pending"], consumers=group["consumers"], lag=group.get("lag")
            )
            for group in groups
        },
    )


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
