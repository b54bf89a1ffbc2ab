"""The weights loop: every few seconds, the users' scheduling weights (``users.weight``) copied
whole into the workers' mirror in Redis (``libs.accounts.weights``). Postgres is the source: a
Redis that lost the mirror, or an admin's write that reached Postgres only, is put right by the
next run. Every replica runs it; each run writes the same thing."""

from __future__ import annotations

from redis.asyncio import Redis
from redis.exceptions import RedisError

from libs import accounts
from libs.db import DATABASE_ERRORS, PgPool
from libs.loops import every


class WeightsLoop:
    def __init__(self, pool: PgPool, redis: Redis, *, interval_s: float) -> None:
        self._pool = pool
        self._redis = redis
        self._interval_s = interval_s

    async def run_forever(self) -> None:
        await every(
            self._interval_s,
            self.run_once,
            name="weights",
            expected=(*DATABASE_ERRORS, RedisError, OSError),
        )

    async def run_once(self) -> int:
        """Mirror the weights; how many users have one other than 1."""
        current = await accounts.weights(self._pool)
        await accounts.mirror_weights(self._redis, current)
        return len(current)
