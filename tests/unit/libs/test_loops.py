"""``every``: a turn, a sleep, again; a failed turn is logged and counted and the loop goes on;
cancelling its task is what stops it, even when a library swallowed the cancellation."""

import asyncio
from typing import Any

import pytest

from libs.loops import cancel_and_wait, every, periodic, stop


class _Log:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str, dict[str, Any]]] = []

    def warning(self, event: str, **fields: Any) -> None:
        self.lines.append(("warning", event, fields))

    def exception(self, event: str, **fields: Any) -> None:
        self.lines.append(("exception", event, fields))


@pytest.fixture
def logged(monkeypatch: pytest.MonkeyPatch) -> _Log:
    log = _Log()
    monkeypatch.setattr(periodic, "log", log)
    return log


async def test_failed_turns_are_logged_and_counted_and_the_loop_goes_on(logged: _Log) -> None:
    outcomes: list[Exception | None] = [None, OSError("away"), ValueError("bug"), None]
    failures: list[Exception] = []
    done = asyncio.Event()

    async def turn() -> None:
        if not outcomes:
            done.set()
            await asyncio.Event().wait()
        outcome = outcomes.pop(0)
        if outcome is not None:
            raise outcome

    loop = asyncio.create_task(
        every(0, turn, name="test", expected=(OSError,), on_error=failures.append)
    )
    await asyncio.wait_for(done.wait(), 5)
    loop.cancel()
    with pytest.raises(asyncio.CancelledError):
        await loop

    assert [type(e) for e in failures] == [OSError, ValueError]
    assert logged.lines == [
        ("warning", "test.run_failed", {"error": "OSError: away"}),
        ("exception", "test.run_failed", {}),
    ]


async def test_it_sleeps_the_interval_after_each_turn(logged: _Log) -> None:
    times: list[float] = []
    clock = asyncio.get_running_loop().time

    async def turn() -> None:
        times.append(clock())

    started = clock()
    loop = asyncio.create_task(every(0.05, turn, name="test"))
    while len(times) < 3:
        await asyncio.sleep(0.01)
    loop.cancel()
    with pytest.raises(asyncio.CancelledError):
        await loop

    assert times[0] - started < 0.05  # the first turn at once
    assert all(b - a >= 0.05 for a, b in zip(times, times[1:], strict=False))
    assert logged.lines == []


async def test_cancelling_it_mid_turn_stops_it_and_is_no_failure(logged: _Log) -> None:
    failures: list[Exception] = []
    turning = asyncio.Event()

    async def turn() -> None:
        turning.set()
        await asyncio.sleep(60)

    loop = asyncio.create_task(every(0, turn, name="test", on_error=failures.append))
    await asyncio.wait_for(turning.wait(), 5)
    loop.cancel()
    with pytest.raises(asyncio.CancelledError):
        await loop

    assert failures == []
    assert logged.lines == []


async def _swallow_one_cancel(turning: asyncio.Event, swallowed: list[int]) -> None:
    """A turn that drops the first cancellation it meets, as Python 3.11's ``wait_for`` drops
    one that arrives when the operation it waits for has just completed."""
    turning.set()
    try:
        await asyncio.sleep(60)
    except asyncio.CancelledError:
        if swallowed:
            raise
        swallowed.append(1)


async def test_a_cancellation_swallowed_in_a_turn_still_stops_the_loop(logged: _Log) -> None:
    turning = asyncio.Event()
    turns: list[int] = []

    async def turn() -> None:
        turns.append(1)
        await _swallow_one_cancel(turning, [])

    loop = asyncio.create_task(every(0, turn, name="test"))
    await asyncio.wait_for(turning.wait(), 5)
    loop.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(loop, 2)

    assert turns == [1]
    assert logged.lines == []


async def test_cancel_and_wait_cancels_again_until_the_task_has_ended() -> None:
    turning = asyncio.Event()
    turns: list[int] = []

    swallowed: list[int] = []

    async def plain_loop() -> None:  # a loop of its own, not ``every``
        while True:
            turns.append(1)
            await _swallow_one_cancel(turning, swallowed)

    task = asyncio.create_task(plain_loop())
    await asyncio.wait_for(turning.wait(), 5)

    await asyncio.wait_for(cancel_and_wait([task], again_s=0.05), 2)

    assert task.cancelled()
    assert len(turns) == 2  # the first cancellation was lost; the second one stopped it


async def test_cancel_and_wait_logs_a_task_that_failed_and_stops_the_others(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    errors: list[tuple[str, dict[str, Any]]] = []

    class _Errors:
        def error(self, event: str, **fields: Any) -> None:
            errors.append((event, fields))

    monkeypatch.setattr(stop, "log", _Errors())

    async def fails() -> None:
        raise ValueError("broken")

    failed = asyncio.create_task(fails(), name="fails")
    running = asyncio.create_task(asyncio.sleep(60), name="sleeps")
    await asyncio.sleep(0)

    await asyncio.wait_for(cancel_and_wait([failed, running]), 2)

    assert running.cancelled()
    assert errors == [("task.failed", {"task": "fails", "error": "ValueError: broken"})]
