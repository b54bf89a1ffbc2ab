"""The only way to queue work. A task is written to the outbox in the transaction that decides
it (a submit, a re-drive, a pipeline's next step) and the relay publishes it to ``relai:tasks``;
nothing else writes the outbox or the tasks stream."""

from libs.outbox.rows import queue, take
from libs.outbox.tasks import Run, first_run, next_step, redrive

__all__ = ["Run", "first_run", "next_step", "queue", "redrive", "take"]
