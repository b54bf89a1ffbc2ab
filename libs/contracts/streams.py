"""Names of the Redis streams, consumer groups and channels. The one place they are spelled."""

TASKS_STREAM = "relai:tasks"
"""Jobs to run: written only by the outbox relay, read by workers."""

TASKS_GROUP = "workers"

RESULTS_STREAM = "relai:results"
"""Job progress and outcomes: written by workers, read by the API's results consumer."""

RESULTS_GROUP = "api"

DEAD_LETTERS_STREAM = "relai:dead-letters"
"""Tasks delivered too many times without finishing (poison messages), kept for inspection."""

EVENTS_CHANNEL = "relai:events"
"""Pub/sub channel that fans request state changes out to every API replica."""

EPOCH_KEY = "relai:epoch"
"""Set by recon while it knows the streams hold everything in flight. Its absence means Redis
lost its data (restarted without persistence, flushed): every unfinished request is re-driven."""

MESSAGE_FIELD = b"m"
"""Every stream entry carries its JSON message under this one field."""

CHUNKS_STREAM_PREFIX = "relai:chunks:"
"""``relai:chunks:{request_id}``: a request's partial output, one entry per chunk, in order.
The entry id is the chunk's event id, by which a WebSocket client resumes."""

CHUNKS_MAXLEN = 10_000
"""Chunks kept per request (approximately: ``MAXLEN ~``)."""

CHUNKS_TTL_S = 3600
"""A request's chunks expire this long after its last one."""

STREAMED_STEPS_PREFIX = "relai:streamed:"
"""``relai:streamed:{request_id}``: the set of a deal's steps that have streamed output (kept as
long as the chunks), which a cancel charges instead of refunding."""

CHUNKS_CHANNEL = "relai:chunks"
"""Pub/sub channel telling every API replica which request has new chunks (the message is its
id), so that its sockets read them without holding a blocked connection each."""

CANCEL_CHANNEL = "relai:cancel"
"""Pub/sub channel on which the API tells every worker that a request was cancelled."""

CANCELLED_KEY_PREFIX = "relai:cancelled:"
"""``relai:cancelled:{request_id}``: marks a cancelled request for workers that missed the
notification (checked before a job starts)."""

CANCELLED_TTL_S = 86_400


def chunks_stream(request_id: object) -> str:
    return f"{CHUNKS_STREAM_PREFIX}{request_id}"


def streamed_steps_key(request_id: object) -> str:
    return f"{STREAMED_STEPS_PREFIX}{request_id}"


def cancelled_key(request_id: object) -> str:
    return f"{CANCELLED_KEY_PREFIX}{request_id}"
