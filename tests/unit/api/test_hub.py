import asyncio
import uuid
from datetime import UTC, datetime
from typing import cast

from redis.asyncio import Redis

from libs.contracts import RequestEvent, RequestStatus
from services.api.ws.hub import Hub, Subscription


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


def test_open_sockets_are_counted_per_user_up_to_the_cap() -> None:
    hub = Hub(cast(Redis, object()), queue_size=1, max_per_user=2)
    alice, bob = uuid.uuid4(), uuid.uuid4()
    assert [hub.hold_socket(alice) for _ in range(3)] == [True, True, False]
    assert hub.hold_socket(bob)
    hub.release_socket(alice)
    assert hub.hold_socket(alice)
    assert not hub.hold_socket(alice)


def test_no_cap_when_the_most_is_zero() -> None:
    hub = Hub(cast(Redis, object()), queue_size=1, max_per_user=0)
    user = uuid.uuid4()
    assert all(hub.hold_socket(user) for _ in range(1000))
