"""Loops on a real Redis stop when they are cancelled, whenever that happens.

On Python 3.11 a tight loop of redis-py calls, cancelled at a random moment, went on running
about one time in four: ``asyncio.wait_for`` (around each socket write) dropped the
cancellation when the write had just completed. A recon whose loop did that never finished
shutting down."""

import asyncio
import random

from libs.loops import cancel_and_wait, every
from libs.streams import create_redis
from tests.support import ServerUrls

TRIES = 40


async def _stop(tasks: list["asyncio.Task[None]"]) -> None:
    """The test's own cleanup, apart from the code under test: cancel until they end."""
    while pending := [task for task in tasks if not task.done()]:
        for task in pending:
            task.cancel()
        await asyncio.wait(pending, timeout=0.05)


async def test_every_stops_on_the_first_cancellation_however_it_lands(
    servers: ServerUrls,
) -> None:
    redis = create_redis(servers.redis_url)
    rng = random.Random(7)

    async def turn() -> None:
        await redis.get("relai:test:loop")

    loops: list[asyncio.Task[None]] = []
    try:
        for attempt in range(TRIES):
            loop = asyncio.create_task(every(0, turn, name="test"))
            loops.append(loop)
            await asyncio.sleep(rng.random() * 0.003)
            loop.cancel()
            done, _ = await asyncio.wait([loop], timeout=2)
            assert done, f"the loop went on after its cancellation (try {attempt})"
            assert loop.cancelled()
    finally:
        await _stop(loops)
        await redis.aclose()


async def test_cancel_and_wait_stops_a_plain_loop_however_the_cancellation_lands(
    servers: ServerUrls,
) -> None:
    redis = create_redis(servers.redis_url)
    rng = random.Random(11)

    async def plain_loop() -> None:
        while True:
            await redis.get("relai:test:loop")

    loops: list[asyncio.Task[None]] = []
    try:
        for attempt in range(TRIES):
            loop = asyncio.create_task(plain_loop())
            loops.append(loop)
            await asyncio.sleep(rng.random() * 0.003)
            await asyncio.wait_for(cancel_and_wait([loop], again_s=0.02), 2)
            assert loop.cancelled(), f"try {attempt}"
    finally:
        await _stop(loops)
        await redis.aclose()
