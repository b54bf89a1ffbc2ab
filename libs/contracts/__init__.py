"""Wire formats shared by every Relai process: stream names, statuses and message models.

Pure data: no I/O and nothing else of ours is imported here.
"""

from libs.contracts.messages import (
    EVENT_BATCH,
    SCHEMA_VERSION,
    RequestEvent,
    ResultMessage,
    TaskMessage,
)
from libs.contracts.status import FINAL_STATUSES, RequestStatus, status_rank
from libs.contracts.streams import (
    DEAD_LETTERS_STREAM,
    EPOCH_KEY,
    EVENTS_CHANNEL,
    RESULTS_GROUP,
    RESULTS_STREAM,
    TASKS_GROUP,
    TASKS_STREAM,
)

__all__ = [
    "DEAD_LETTERS_STREAM",
    "EPOCH_KEY",
    "EVENTS_CHANNEL",
    "EVENT_BATCH",
    "FINAL_STATUSES",
    "RESULTS_GROUP",
    "RESULTS_STREAM",
    "SCHEMA_VERSION",
    "TASKS_GROUP",
    "TASKS_STREAM",
    "RequestEvent",
    "RequestStatus",
    "ResultMessage",
    "TaskMessage",
    "status_rank",
]
