"""The only way to queue work. A task is written to the outbox in the transaction that decides
it (a submit, a re-drive, a pipeline's next step) and the relay publishes it to ``relai:tasks``;
a webhook event is written to ``webhook_deliveries`` with the final state it reports (or on
demand: a ping, a redelivery), and a dispatcher sends it. Nothing else writes the outbox or the
tasks stream, or queues a delivery."""

from libs.outbox.rows import queue, take
from libs.outbox.tasks import Run, first_run, next_step, redrive
from libs.outbox.webhooks import Ending, events, queue_events, queue_ping, redeliver

__all__ = [
    "Ending",
    "Run",
    "events",
    "first_run",
    "next_step",
    "queue",
    "queue_events",
    "queue_ping",
    "redeliver",
    "redrive",
    "take",
]
