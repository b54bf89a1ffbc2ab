"""``every``: run a turn, sleep, again, until cancelled; a turn that fails is logged and counted,
and the next one comes all the same."""

import asyncio
from collections.abc import Awaitable, Callable
from typing import NoReturn

from libs.logs import get_logger
from libs.loops.stop import raise_if_cancelled

log = get_logger(__name__)


async def every(
    interval_s: float,
    turn: Callable[[], Awaitable[object]],
    *,
    name: str,
    expected: tuple[type[Exception], ...] = (),
    on_error: Callable[[Exception], None] | None = None,
) -> NoReturn:
    """Await ``turn()``, then sleep ``interval_s``, forever: only cancelling the task stops it.

    A turn that raises is logged as ``{name}.run_failed``: a warning naming the error for the
    ``expected`` kinds (a server that is away, say), with the traceback for any other; then
    ``on_error`` is told (to count it), and the loop sleeps and goes on.
    """
    while True:
        raise_if_cancelled()
        try:
            await turn()
        except Exception as exc:
            if isinstance(exc, expected):
                log.warning(f"{name}.run_failed", error=f"{type(exc).__name__}: {exc}")
            else:
                log.exception(f"{name}.run_failed")
            if on_error is not None:
                on_error(exc)
        await asyncio.sleep(interval_s)
