import asyncio
import uuid
from datetime import UTC, datetime

from libs.contracts import RequestEvent, RequestStatus
from services.api.ws.hub import Subscription


def _event(n: int) -> RequestEvent:
    return RequestEvent(
        request_id=uuid.uuid4(),
        user_id=uuid.uuid4(),
        status=RequestStatus.RUNNING,
        updated_at=datetime.now(UTC),
        traceparent=f"{n}",
    )


async def test_batches_everything_that_arrived() -> None:
    sub = Subscription(size=10)
    events = [_event(n) for n in range(3)]
    for event in events:
        sub.push(event)
    assert await sub.next_batch() == events
    waiting = asyncio.create_task(sub.next_batch())
    await asyncio.sleep(0)
    sub.push(events[0])
    assert await waiting == [events[0]]


async def test_a_subscriber_that_falls_behind_is_marked_and_gets_nothing_more() -> None:
    sub = Subscription(size=2)
    for n in range(3):
        sub.push(_event(n))
    assert sub.overflowed
    assert await sub.next_batch() == []


async def test_close_wakes_the_waiting_reader() -> None:
    sub = Subscription(size=2)
    waiting = asyncio.create_task(sub.next_batch())
    await asyncio.sleep(0)
    sub.close()
    assert await asyncio.wait_for(waiting, 1) == []
