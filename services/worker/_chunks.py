"""Where a job's partial output goes: ``relai:chunks:{request_id}``, one entry per chunk.

The entry id Redis assigns is the chunk's event id: monotonic per request, so a WebSocket client
that saw a given id resumes right after it.
"""

from redis.asyncio import Redis

from libs.contracts import (
    CHUNKS_CHANNEL,
    CHUNKS_MAXLEN,
    CHUNKS_TTL_S,
    ChunkMessage,
    TaskMessage,
    chunks_stream,
)
from libs.streams import encode
from services.worker.job import ChunkSink


class ChunkPublisher:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    def sink_for(self, task: TaskMessage) -> ChunkSink:
        key = chunks_stream(task.request_id)

        async def emit(text: str) -> None:
            message = ChunkMessage(request_id=task.request_id, attempt=task.attempt, text=text)
            pipe = self._redis.pipeline(transaction=False)
            pipe.xadd(key, encode(message), maxlen=CHUNKS_MAXLEN, approximate=True)
            pipe.expire(key, CHUNKS_TTL_S)
            pipe.publish(CHUNKS_CHANNEL, str(task.request_id))
            await pipe.execute()

        return emit
