"""Wire formats shared by every Relai process: stream names, the limits' key layout, handler
ids, statuses and message models.

Pure data: no I/O and nothing else of ours is imported here.
"""

from libs.contracts.handlers import HANDLER_ID, HANDLER_ID_PATTERN, HandlerId, is_handler_id
from libs.contracts.limits import (
    LIMITS_ACTIVE_KEY,
    LIMITS_KNOWN_KEY,
    LIMITS_LIVE_KEY,
    LIMITS_PREFIX,
)
from libs.contracts.messages import (
    EVENT_BATCH,
    SCHEMA_VERSION,
    ChunkMessage,
    RequestEvent,
    ResultMessage,
    TaskMessage,
)
from libs.contracts.status import FINAL_STATUSES, RequestStatus, status_rank
from libs.contracts.streams import (
    CANCEL_CHANNEL,
    CANCELLED_TTL_S,
    CHUNKS_CHANNEL,
    CHUNKS_MAXLEN,
    CHUNKS_TTL_S,
    DEAD_LETTERS_STREAM,
    EPOCH_KEY,
    EVENTS_CHANNEL,
    RESULTS_GROUP,
    RESULTS_STREAM,
    TASKS_GROUP,
    TASKS_STREAM,
    cancelled_key,
    chunks_stream,
    streamed_steps_key,
)

__all__ = [
    "CANCELLED_TTL_S",
    "CANCEL_CHANNEL",
    "CHUNKS_CHANNEL",
    "CHUNKS_MAXLEN",
    "CHUNKS_TTL_S",
    "DEAD_LETTERS_STREAM",
    "EPOCH_KEY",
    "LIMITS_ACTIVE_KEY",
    "LIMITS_KNOWN_KEY",
    "LIMITS_LIVE_KEY",
    "LIMITS_PREFIX",
    "EVENTS_CHANNEL",
    "EVENT_BATCH",
    "FINAL_STATUSES",
    "HANDLER_ID",
    "HANDLER_ID_PATTERN",
    "RESULTS_GROUP",
    "RESULTS_STREAM",
    "SCHEMA_VERSION",
    "TASKS_GROUP",
    "TASKS_STREAM",
    "ChunkMessage",
    "HandlerId",
    "RequestEvent",
    "RequestStatus",
    "ResultMessage",
    "TaskMessage",
    "cancelled_key",
    "chunks_stream",
    "streamed_steps_key",
    "is_handler_id",
    "status_rank",
]
