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
