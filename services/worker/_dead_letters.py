"""Poison messages: a task whose every delivery ended without a result (the worker running it
crashed, or stalled past the visibility timeout) is retired after ``worker_max_deliveries``.

Its fields go to the dead-letters stream, its request is reported failed through the normal
results path (so the results consumer records it and refunds it once), and the entry is acked:
all in one MULTI/EXEC of the ``ResultWriter``.
"""

from redis.asyncio import Redis

from libs.contracts import TASKS_GROUP, TASKS_STREAM, ResultMessage
from libs.logs import bind_request, get_logger
from libs.streams import encode
from services.worker._entries import Fields, salvage
from services.worker._writer import Encoded, ResultWriter
from services.worker.metrics import DEAD_LETTERS

log = get_logger(__name__)


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
    writer: ResultWriter, *, consumer: str, entry_id: bytes, fields: Fields, deliveries: int
) -> None:
    reason = (
        f"the job was delivered {deliveries} times and never finished (the worker running it "
        "crashed or stalled each time); it was moved to the dead letters and will not run again"
    )
    dead: Encoded = dict(fields.items())
    dead.update(
        {b"entry_id": entry_id, b"deliveries": str(deliveries).encode(), b"reason": reason.encode()}
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
        )
        writer.add(encode(message), ack=entry_id, dead_letter=dead)
