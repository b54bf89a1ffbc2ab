"""Stopping background tasks for good.

Python 3.11's ``asyncio.wait_for`` drops a cancellation that arrives just as the awaited
operation completes: the task goes on as if it had never been cancelled. redis-py wraps every
socket write in ``wait_for`` (when the client has a ``socket_timeout``, as Relai's do), so a
loop cancelled at that moment kept running, and a shutdown that awaited it never ended. The
write runs in a task of its own, so the window is wide: a tight loop of calls, cancelled at a
random moment, went on about one time in four, and often again when cancelled once more.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from libs.logs import get_logger

log = get_logger(__name__)


async def cancel_and_wait(tasks: Iterable[asyncio.Future[Any]], *, again_s: float = 0.1) -> None:
    """Cancel ``tasks`` and return once every one has ended, cancelling again each ``again_s``
    those still running (a cancellation swallowed by a library, above, stops it the next time).

    A task that ended with an error other than its cancellation has it logged, not raised: the
    caller is shutting down and goes on to close what the tasks used.
    """
    tasks = list(tasks)
    pending = {task for task in tasks if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=again_s)
    for task in tasks:
        if task.cancelled():
            continue
        error = task.exception()
        if error is not None:
            name = task.get_name() if isinstance(task, asyncio.Task) else repr(task)
            log.error("task.failed", task=name, error=f"{type(error).__name__}: {error}")


def raise_if_cancelled() -> None:
    """Raise ``CancelledError`` if the current task was cancelled but the cancellation was
    swallowed on the way (see above): a loop calls this once per turn."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
