"""Users' weights under fair scheduling: a user of weight w is taken w jobs per turn where a
user of weight 1 is taken one, in one take script call or across many, by every worker process;
a turn's count never outlives the user's waiting jobs, and a weight changed in the mirror counts
from the next take. And the parks they are taken from survive a Redis that lost the script."""

import uuid
from typing import Any

from redis.asyncio import Redis

from libs.contracts import TASKS_STREAM, TaskMessage
from libs.contracts.limits import FAIR_QUEUE, LIMITS_WEIGHTS_KEY, turns_key
from services.worker._limits import FAIR, Limiter
from tests.integration.worker.helpers import add_tasks, finals, task, wait_finals
from tests.integration.worker.processes import consumers_reading, worker_process
from tests.support import ServerUrls


def _of(user: uuid.UUID, prompt: str, **params: Any) -> TaskMessage:
    return task("echo.delay", prompt, **params).model_copy(update={"user_id": user})


async def _parked(redis: Redis, jobs: list[TaskMessage]) -> Limiter:
    """``jobs`` added to the stream and parked in the default tier's queue, in order."""
    limiter = Limiter(redis, lease_ttl_s=30.0, on_parked=lambda _: None)
    await add_tasks(redis, jobs)
    entries = await redis.xrange(TASKS_STREAM) or []
    for (entry_id, _), job in zip(entries, jobs, strict=True):
        assert isinstance(entry_id, bytes)
        await limiter.park(entry_id, job, job.model_dump_json().encode(), FAIR)
    return limiter


async def test_a_user_of_weight_three_is_taken_three_jobs_per_turn(redis_client: Redis) -> None:
    heavy, light = uuid.uuid4(), uuid.uuid4()
    await redis_client.hset(LIMITS_WEIGHTS_KEY, str(heavy), 3)
    jobs = [_of(heavy, f"h{i}") for i in range(7)] + [_of(light, f"l{i}") for i in range(4)]
    owner = {j.request_id: "H" if j.user_id == heavy else "L" for j in jobs}
    limiter = await _parked(redis_client, jobs)

    one_by_one = []
    for _ in range(6):
        taken = await limiter.take(FAIR_QUEUE, 1)
        assert isinstance(taken, list)
        one_by_one += [owner[t.lease.request_id] for t in taken]
    rest = await limiter.take(FAIR_QUEUE, 10)  # the same turns within one call
    assert isinstance(rest, list)

    assert "".join(one_by_one) == "HHHLHH"
    assert "".join(owner[t.lease.request_id] for t in rest) == "HLHLL"
    # Nothing waits any more: no turn is left counted.
    assert await redis_client.hlen(turns_key(FAIR_QUEUE)) == 0


async def test_a_weight_changed_in_the_mirror_counts_from_the_next_take(
    redis_client: Redis,
) -> None:
    heavy, light = uuid.uuid4(), uuid.uuid4()
    jobs = [_of(heavy, f"h{i}") for i in range(6)] + [_of(light, f"l{i}") for i in range(6)]
    owner = {j.request_id: "H" if j.user_id == heavy else "L" for j in jobs}
    limiter = await _parked(redis_client, jobs)

    first = await limiter.take(FAIR_QUEUE, 4)
    await redis_client.hset(LIMITS_WEIGHTS_KEY, str(heavy), 2)
    second = await limiter.take(FAIR_QUEUE, 6)
    await redis_client.hdel(LIMITS_WEIGHTS_KEY, str(heavy))
    third = await limiter.take(FAIR_QUEUE, 2)

    assert isinstance(first, list)
    assert isinstance(second, list)
    assert isinstance(third, list)
    assert "".join(owner[t.lease.request_id] for t in first) == "HLHL"
    assert "".join(owner[t.lease.request_id] for t in second) == "HHLHHL"
    assert "".join(owner[t.lease.request_id] for t in third) == "LL"


async def test_two_worker_processes_share_slots_by_weight(
    servers: ServerUrls, redis_client: Redis
) -> None:
    heavy, light = uuid.uuid4(), uuid.uuid4()
    await redis_client.hset(LIMITS_WEIGHTS_KEY, str(heavy), 3)
    jobs = [_of(heavy, f"h{i}", delay_ms=40) for i in range(40)]
    jobs += [_of(light, f"l{i}", delay_ms=40) for i in range(40)]
    owner = {j.request_id: "heavy" if j.user_id == heavy else "light" for j in jobs}
    settings = {"RELAI_WORKER_CONCURRENCY": "2", "RELAI_WORKER_SCHEDULING": "fair"}
    async with (
        worker_process(servers, "w1", **settings),
        worker_process(servers, "w2", **settings),
    ):
        await consumers_reading(redis_client, {"w1", "w2"})
        await add_tasks(redis_client, jobs)
        results = await wait_finals(redis_client, len(jobs), timeout=60)
    ended = [owner[r.request_id] for r in finals(results)]
    assert len(ended) == 80
    # While both wait, three of the heavy user's jobs run for one of the light user's: of the
    # first 40 to end, 30 are theirs (a few either way: four slots take and end in any order).
    assert 26 <= ended[:40].count("heavy") <= 34, ended


async def test_parks_go_through_after_redis_lost_the_script(redis_client: Redis) -> None:
    """Parks are sent as EVALSHA without asking Redis first whether it has the script: one
    that lost it (restarted, failed over) refuses them all, and they are sent again once it
    is loaded; each job is parked once."""
    user = uuid.uuid4()
    first = await _parked(redis_client, [_of(user, "before")])
    await redis_client.script_flush()
    jobs = [_of(user, "after")]
    await add_tasks(redis_client, jobs)
    entries = await redis_client.xrange(TASKS_STREAM) or []
    entry_id, _ = entries[-1]
    assert isinstance(entry_id, bytes)
    await first.park(entry_id, jobs[0], jobs[0].model_dump_json().encode(), FAIR)

    taken = await first.take(FAIR_QUEUE, 10)
    assert isinstance(taken, list)
    assert sorted(t.message.prompt for t in taken if t.message) == ["after", "before"]
    assert await redis_client.xlen(TASKS_STREAM) == 0
