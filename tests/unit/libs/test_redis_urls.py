"""``REDIS_URL`` names a server or a Sentinel set; one factory builds every client from it."""

import pytest
from redis.asyncio import BlockingConnectionPool
from redis.asyncio.sentinel import SentinelConnectionPool

from libs.settings import CommonSettings
from libs.streams import create_redis, parse_sentinel_url
from libs.streams.client import SentinelUrl


def test_a_plain_url_is_no_sentinel_set() -> None:
    for url in ("redis://127.0.0.1:6379/0", "rediss://h:1/2", "unix:///tmp/r.sock"):
        assert parse_sentinel_url(url) is None


def test_a_sentinel_url_names_the_sentinels_the_service_and_the_database() -> None:
    assert parse_sentinel_url(
        "redis+sentinel://:s%40cret@a:26379,b:26380, c/relai/3?sentinel_password=x"
    ) == SentinelUrl(
        sentinels=(("a", 26379), ("b", 26380), ("c", 26379)),
        service_name="relai",
        db=3,
        password="s@cret",
        sentinel_password="x",
    )
    assert parse_sentinel_url("sentinel://user:pw@h:1/svc") == SentinelUrl(
        sentinels=(("h", 1),), service_name="svc", username="user", password="pw"
    )
    assert parse_sentinel_url("redis+sentinel://pw@h:1/svc/0") == SentinelUrl(
        sentinels=(("h", 1),), service_name="svc", password="pw"
    )


@pytest.mark.parametrize(
    "url",
    [
        "redis+sentinel://h:1",  # no service
        "redis+sentinel://h:1/svc/x",  # not a database number
        "redis+sentinel://h:port/svc",
        "redis+sentinel://h:1/a/1/2",
    ],
)
def test_a_malformed_sentinel_url_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match=r"sentinel|service|database"):
        parse_sentinel_url(url)


async def test_the_factory_follows_the_sentinels_primary() -> None:
    client = create_redis("redis+sentinel://pw@127.0.0.1:1/relai/2", max_connections=8)
    blocking = create_redis("redis+sentinel://127.0.0.1:1/relai", wait_for_connection_s=5)
    plain = create_redis("redis://127.0.0.1:1/0", wait_for_connection_s=5)
    try:
        pool = client.connection_pool
        assert isinstance(pool, SentinelConnectionPool)
        assert pool.is_master
        assert pool.service_name == "relai"
        assert pool.connection_kwargs["db"] == 2
        assert pool.connection_kwargs["password"] == "pw"
        assert pool.max_connections == 8
        assert isinstance(blocking.connection_pool, SentinelConnectionPool)
        assert isinstance(blocking.connection_pool, BlockingConnectionPool)
        assert isinstance(plain.connection_pool, BlockingConnectionPool)
    finally:
        for each in (client, blocking, plain):
            await each.aclose()


def test_the_direct_database_url_defaults_to_the_database_url(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@pgbouncer:6432/relai")
    monkeypatch.delenv("DATABASE_DIRECT_URL", raising=False)
    alone = CommonSettings()
    assert (alone.direct_database_url, alone.database_pooled) == (alone.database_url, False)
    monkeypatch.setenv("DATABASE_DIRECT_URL", "postgresql://u@postgres:5432/relai")
    split = CommonSettings()
    assert split.direct_database_url == "postgresql://u@postgres:5432/relai"
    assert split.database_pooled
