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
    streamed_steps_key,
)
from libs.streams import encode
from services.worker._coalesce import Coalescer
from services.worker.job import ChunkSink


class ChunkPublisher:
    """Chunks of every job of the process go out together, one pipeline per round trip; a
    job's ``emit`` returns once its chunk is in Redis, so a job's chunks keep their order."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._publish = Coalescer(self._write)

    def sink_for(self, task: TaskMessage) -> ChunkSink:
        """Where one execution of ``task`` writes its chunks, numbered from 0."""
        written = 0

        async def emit(text: str) -> None:
            nonlocal written
            index, written = written, written + 1
            await self._publish(
                ChunkMessage(
                    request_id=task.request_id,
                    attempt=task.attempt,
                    text=text,
                    step=task.step,
                    index=index,
                )
            )

        return emit

    async def _write(self, chunks: list[ChunkMessage]) -> list[None]:
        pipe = self._redis.pipeline(transaction=False)
        for chunk in chunks:
            key = chunks_stream(chunk.request_id)
            pipe.xadd(key, encode(chunk), maxlen=CHUNKS_MAXLEN, approximate=True)
            pipe.expire(key, CHUNKS_TTL_S)
            if chunk.step is not None:
                # What a cancel of the deal charges rather than refunds.
                streamed = streamed_steps_key(chunk.request_id)
                pipe.sadd(streamed, chunk.step)
                pipe.expire(streamed, CHUNKS_TTL_S)
        for request_id in {chunk.request_id for chunk in chunks}:
            pipe.publish(CHUNKS_CHANNEL, str(request_id))
        await pipe.execute()
        return [None] * len(chunks)
