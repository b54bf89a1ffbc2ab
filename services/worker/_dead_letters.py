"""Poison messages: a task that kills (or stalls) every worker running it.

Counting deliveries alone would blame the innocent: when a worker dies, every job it held is
delivered again, and the jobs taken over together with a poison die with it again and again.
So a task runs normally for its first ``QUARANTINE_FROM - 1`` deliveries; from then on it runs in
quarantine: one quarantined task at a time per worker, each run counted in Redis
(``relai:quarantine:<entry id>``) until it finishes. A quarantined run that never finished means
the task itself took its worker down. After ``worker_max_crashes`` of those the task is retired.
An innocent job can only die in quarantine beside a poison's first, unquarantined runs, so with
``worker_max_crashes`` >= ``QUARANTINE_FROM`` one poison can never retire anything but itself.

Its fields go to the dead-letters stream, its request is reported failed through the normal
results path (so the results consumer records it and refunds it once), and the entry is acked:
all in one MULTI/EXEC of the ``ResultWriter``.
"""

from redis.asyncio import Redis

from libs.contracts import TASKS_GROUP, TASKS_STREAM, ResultMessage, TaskMessage
from libs.contracts.streams import MESSAGE_FIELD
from libs.contracts.tiers import DEFAULT_TIER
from libs.logs import bind_request, get_logger
from libs.streams import encode
from services.worker._entries import Fields, salvage
from services.worker._limits import Taken
from services.worker._writer import Encoded, ResultWriter
from services.worker.metrics import DEAD_LETTERS

log = get_logger(__name__)

QUARANTINE_FROM = 3
"""The delivery from which a task runs in quarantine (its worker died or stalled twice)."""
QUARANTINE_KEY = "relai:quarantine:"
QUARANTINE_TTL_S = 7 * 86400


async def quarantine_start(redis: Redis, entry_id: bytes) -> int:
    """Record one more quarantined run of ``entry_id``; returns how many earlier ones never
    finished (each took its worker down)."""
    key = QUARANTINE_KEY + entry_id.decode()
    pipe = redis.pipeline(transaction=True)
    pipe.incr(key)
    pipe.expire(key, QUARANTINE_TTL_S)
    runs, _ = await pipe.execute()
    return int(runs) - 1


async def quarantine_end(redis: Redis, entry_id: bytes) -> None:
    await redis.delete(QUARANTINE_KEY + entry_id.decode())


async def delivery_counts(redis: Redis, ids: list[bytes]) -> dict[bytes, int]:
    """How many times each pending entry was delivered (read or claimed), as Redis counts it."""
    if not ids:
        return {}
    pipe = redis.pipeline(transaction=False)
    for entry_id in ids:
        pipe.xpending_range(TASKS_STREAM, TASKS_GROUP, min=entry_id, max=entry_id, count=1)
    counts: dict[bytes, int] = {}
    for entry_id, reply in zip(ids, await pipe.execute(), strict=True):
        if reply:
            counts[entry_id] = int(reply[0]["times_delivered"])
    return counts


def retire(
    writer: ResultWriter,
    *,
    consumer: str,
    entry_id: bytes,
    fields: Fields,
    deliveries: int,
    crashes: int,
) -> None:
    reason = (
        f"the job was delivered {deliveries} times and never finished: the worker running it "
        f"crashed or stalled each time, {crashes} of them while it ran alone in quarantine; it "
        "was moved to the dead letters and will not run again"
    )
    dead: Encoded = dict(fields.items())
    dead.update(
        {
            b"entry_id": entry_id,
            b"deliveries": str(deliveries).encode(),
            b"crashes": str(crashes).encode(),
            b"reason": reason.encode(),
        }
    )
    DEAD_LETTERS.inc()
    known = salvage(fields)
    if known is None:
        log.error("task.dead_letter", entry_id=entry_id.decode(), deliveries=deliveries)
        writer.add(None, ack=entry_id, dead_letter=dead)
        return
    request_id, attempt, traceparent = known
    with bind_request(request_id):
        log.error("task.dead_letter", entry_id=entry_id.decode(), deliveries=deliveries)
        message = ResultMessage(
            request_id=request_id,
            traceparent=traceparent,
            attempt=attempt,
            kind="failed",
            error=reason,
            worker=consumer,
            tier=DEFAULT_TIER,  # a stream entry: arrival order, or reclaimed from a dead worker
        )
        writer.add(encode(message), ack=entry_id, dead_letter=dead)


def retire_leased(writer: ResultWriter, *, consumer: str, taken: Taken) -> None:
    """The same for a parked job (fair scheduling, or an integration's limits), counted by its
    expired leases instead of deliveries: dead-lettered, reported failed, its lease released."""
    reason = (
        f"the job's lease expired {taken.expired} times: the worker running it crashed or "
        f"stalled each time, {taken.crashes} of them while it ran alone in quarantine; it was "
        "moved to the dead letters and will not run again"
    )
    dead: Encoded = {
        MESSAGE_FIELD: taken.task,
        b"lease": taken.lease.id.encode(),
        b"integration": taken.lease.integration.encode(),
        # As a stream entry's: the times it was handed to a worker that never finished it.
        b"deliveries": str(taken.expired).encode(),
        b"crashes": str(taken.crashes).encode(),
        b"reason": reason.encode(),
    }
    DEAD_LETTERS.inc()
    task = TaskMessage.model_validate_json(taken.task)
    with bind_request(task.request_id):
        log.error("task.dead_letter", lease=taken.lease.id, expired=taken.expired)
        message = ResultMessage(
            request_id=task.request_id,
            traceparent=task.traceparent,
            attempt=task.attempt,
            kind="failed",
            error=reason,
            worker=consumer,
            step=task.step,
            tier=taken.lease.tier,
        )
        writer.add(encode(message), release=taken.lease, dead_letter=dead)
