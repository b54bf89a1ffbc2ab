"""The one place a Redis client is made: every process (API, relay, results consumer, WebSocket
fan-out, rate limiter, workers, recon) calls ``create_redis``.

``REDIS_URL`` is either a plain server (``redis://``, ``rediss://``, ``unix://``) or a Sentinel set:

    redis+sentinel://[[user:]password@]host:port[,host:port...]/service_name[/db][?sentinel_password=...]

For a Sentinel set the client asks the sentinels for the current primary of ``service_name`` on
every new connection, and drops its connections when the primary changes, so that a failover is
followed like a restart: the commands in flight fail (with ``ConnectionError``, which every loop
already retries), the next ones go to the new primary. ``password`` (and ``user``) authenticate
to the Redis servers; ``sentinel_password`` to the sentinels, when they have one of their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.exceptions import ResponseError

SENTINEL_SCHEMES = ("redis+sentinel", "sentinel")


@dataclass(frozen=True, slots=True)
class SentinelUrl:
    """A ``redis+sentinel://`` URL, parsed."""

    sentinels: tuple[tuple[str, int], ...]
    service_name: str
    db: int = 0
    username: str | None = None
    password: str | None = None
    sentinel_password: str | None = None


def parse_sentinel_url(url: str) -> SentinelUrl | None:
    """The Sentinel set ``url`` names, or None for a plain Redis URL. Raises ``ValueError`` on a
    malformed Sentinel URL."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in SENTINEL_SCHEMES:
        return None
    parts = urlsplit(f"redis://{rest}")
    userinfo, _, hosts = parts.netloc.rpartition("@")
    username: str | None = None
    password: str | None = None
    if userinfo:
        user, colon, secret = userinfo.partition(":")
        if colon:
            username, password = unquote(user) or None, unquote(secret)
        else:
            password = unquote(user)
    sentinels: list[tuple[str, int]] = []
    for host in hosts.split(","):
        name, _, port = host.strip().rpartition(":")
        if not name:
            name, port = host.strip(), "26379"
        if not name or not port.isdigit():
            raise ValueError(f"not a sentinel address: {host!r} (host:port)")
        sentinels.append((name.strip("[]"), int(port)))
    path = [p for p in parts.path.split("/") if p]
    if not path or len(path) > 2:
        raise ValueError(
            "a Sentinel URL names its service: redis+sentinel://host:port/service[/db]"
        )
    if len(path) == 2 and not path[1].isdigit():
        raise ValueError(f"not a database number: {path[1]!r}")
    query = parse_qs(parts.query)
    return SentinelUrl(
        sentinels=tuple(sentinels),
        service_name=unquote(path[0]),
        db=int(path[1]) if len(path) == 2 else 0,
        username=username,
        password=password or None,
        sentinel_password=next(iter(query.get("sentinel_password", [])), None),
    )


class _BlockingSentinelPool(SentinelConnectionPool, BlockingConnectionPool):
    """The primary's pool that waits for a free connection, as ``BlockingConnectionPool``."""


class _SentinelRedis(Redis):
    """Closes the sentinels' connections with its own."""

    sentinel_manager: Sentinel | None = None

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        if self.sentinel_manager is not None:
            for client in self.sentinel_manager.sentinels:
                await client.aclose()


def create_redis(
    url: str, *, max_connections: int = 64, wait_for_connection_s: float | None = None
) -> Redis:
    """A client for ``url`` (a server or a Sentinel set); responses stay bytes, since stream
    payloads are JSON bytes. With ``wait_for_connection_s`` a call waits that long for a free
    connection when all ``max_connections`` are busy (else it fails at once)."""
    sentinel = parse_sentinel_url(url)
    if sentinel is None:
        if wait_for_connection_s is None:
            return Redis.from_url(url, max_connections=max_connections, health_check_interval=30)
        pool = BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=wait_for_connection_s,
            health_check_interval=30,
        )
        return Redis(connection_pool=pool)
    auth: dict[str, Any] = {"username": sentinel.username, "password": sentinel.password}
    manager = Sentinel(  # type: ignore[no-untyped-call]
        list(sentinel.sentinels),
        sentinel_kwargs={"password": sentinel.sentinel_password, "socket_timeout": 5},
        **auth,
    )
    pool_options: dict[str, Any] = {
        "db": sentinel.db,
        "max_connections": max_connections,
        "health_check_interval": 30,
    }
    if wait_for_connection_s is not None:
        pool_options["timeout"] = wait_for_connection_s
    client: _SentinelRedis = manager.master_for(
        sentinel.service_name,
        redis_class=_SentinelRedis,
        connection_pool_class=(
            SentinelConnectionPool if wait_for_connection_s is None else _BlockingSentinelPool
        ),
        **pool_options,
    )
    client.sentinel_manager = manager
    return client


async def ensure_group(redis: Redis, stream: str, group: str) -> None:
    """Create ``group`` on ``stream`` (and the stream) unless it exists.

    A new group starts at the beginning of the stream (``0``) so that no entry written before
    the group existed is skipped.
    """
    try:
        await redis.xgroup_create(stream, group, id="0", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise
