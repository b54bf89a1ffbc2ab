from redis.asyncio import Redis
from redis.exceptions import ResponseError


def create_redis(url: str, *, max_connections: int = 64) -> "Redis":
    """A client for ``url``; responses stay bytes, since stream payloads are JSON bytes."""
    return Redis.from_url(url, max_connections=max_connections, health_check_interval=30)


async def ensure_group(redis: "Redis", stream: str, group: str) -> None:
    """Create ``group`` on ``stream`` (and the stream) unless it exists.

    A new group starts at the beginning of the stream (``0``) so that no entry written before
    the group existed is skipped.
    """
    try:
        await redis.xgroup_create(stream, group, id="0", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise
