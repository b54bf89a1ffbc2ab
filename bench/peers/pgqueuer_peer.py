"""pgqueuer on Postgres (asyncpg), dequeuing in batches of 10 (its default and documented
batch size), with no concurrency limit, so that one worker holds the 1,000 sleeping tasks.
Completions are still recorded in Redis, as for every peer."""

from __future__ import annotations

import asyncio
import json

import asyncpg
from pgqueuer import AsyncpgDriver, AsyncpgPoolDriver, Job, PgQueuer, Queries

from bench.peers import common


async def _worker() -> None:
    connection = await asyncpg.connect(common.database_url())
    driver = AsyncpgDriver(connection)
    queries = Queries(driver)
    if not await queries.schema_is_installed():
        await queries.install()
    pgq = PgQueuer(driver)

    @pgq.entrypoint("work")
    async def work(job: Job) -> None:
        run, sent, delay = json.loads(job.payload or b"[]")
        if delay:
            await asyncio.sleep(delay)
        await common.arecord(run, sent)

    await pgq.run(batch_size=10)


async def _produce(job: common.Produce) -> None:
    pool = await asyncpg.create_pool(common.database_url(), min_size=1, max_size=16)
    try:
        queries = Queries(AsyncpgPoolDriver(pool))

        async def send(sent: str) -> None:
            await queries.enqueue("work", json.dumps([job.run, sent, job.delay]).encode())

        await common.produce_async(job, send)
    finally:
        await pool.close()


def main() -> None:
    args = common.parse()
    if args.command == "worker":
        # --concurrent changes nothing: the same worker takes both kinds of task.
        asyncio.run(_worker())
    else:
        asyncio.run(_produce(common.produce_of(args)))


if __name__ == "__main__":
    main()
