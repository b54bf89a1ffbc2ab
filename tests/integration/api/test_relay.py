import asyncio
import uuid
from typing import Any

import asyncpg
import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from libs.contracts import TASKS_STREAM
from services.api.outbox.relay import OutboxRelay
from tests.support import ServerUrls


async def _fill_outbox(pool: "asyncpg.Pool[Any]", n: int) -> list[str]:
    ids = [str(uuid.uuid4()) for _ in range(n)]
    await pool.executemany(
        "INSERT INTO outbox (stream, request_id, payload) VALUES ($1, $2::uuid, $3)",
        [(TASKS_STREAM, i, f'{{"request_id": "{i}"}}') for i in ids],
    )
    return ids


async def test_concurrent_relays_publish_each_row_exactly_once(
    servers: ServerUrls, db_pool: "asyncpg.Pool[Any]", redis_client: Redis
) -> None:
    ids = await _fill_outbox(db_pool, 3000)
    relays = [
        OutboxRelay(db_pool, redis_client, database_url=servers.database_url, batch=50, poll_s=1)
        for _ in range(6)
    ]
    await asyncio.gather(*(relay.drain() for relay in relays))
    entries: Any = await redis_client.xrange(TASKS_STREAM)
    published = [fields[b"m"].decode() for _, fields in entries]
    assert len(published) == 3000
    assert sorted(published) == sorted(f'{{"request_id": "{i}"}}' for i in ids)
    assert sum(relay.published for relay in relays) == 3000
    assert sum(1 for relay in relays if relay.published) > 1
    assert await db_pool.fetchval("SELECT count(*) FROM outbox") == 0


async def test_relay_wakes_on_notify_and_keeps_rows_when_redis_fails(
    servers: ServerUrls, db_pool: "asyncpg.Pool[Any]", redis_client: Redis
) -> None:
    relay = OutboxRelay(
        db_pool, redis_client, database_url=servers.database_url, batch=100, poll_s=30
    )
    task = asyncio.create_task(relay.run())
    try:
        await asyncio.sleep(0.2)
        await _fill_outbox(db_pool, 3)
        for _ in range(100):
            if relay.published == 3:
                break
            await asyncio.sleep(0.01)
        assert relay.published == 3, "a notification should wake the relay long before its poll"
    finally:
        task.cancel()
    broken = OutboxRelay(
        db_pool,
        Redis.from_url("redis://127.0.0.1:1/0"),
        database_url=servers.database_url,
        batch=100,
        poll_s=30,
    )
    await _fill_outbox(db_pool, 2)
    with pytest.raises(RedisConnectionError):
        await broken.publish_batch()
    assert await db_pool.fetchval("SELECT count(*) FROM outbox") == 2
