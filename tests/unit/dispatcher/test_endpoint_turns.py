"""Recording locks the endpoint's row, so the attempts of one endpoint record one after another:
the dispatcher takes a pooled connection for one of them only when its turn comes, never a
connection per attempt left waiting on that row (through PgBouncer, a server connection each)."""

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from libs.webhooks import RetryPolicy
from services.dispatcher.delivery import service
from services.dispatcher.delivery.schemas import Attempt, Claimed, Recorded


class Connection:
    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        yield


class Pool:
    """Counts the connections taken at once."""

    def __init__(self) -> None:
        self.taken = 0
        self.most = 0

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[Connection]:
        self.taken += 1
        self.most = max(self.most, self.taken)
        try:
            yield Connection()
        finally:
            self.taken -= 1


def _claimed(endpoint_id: uuid.UUID | None) -> Claimed:
    return Claimed(
        id=uuid.uuid4(),
        user_id=uuid.uuid4(),
        endpoint_id=endpoint_id,
        request_id=None,
        event="request.succeeded",
        url="https://example.com/hook",
        payload="{}",
        attempt=1,
        secrets=("s",),
    )


async def test_one_endpoint_s_attempts_take_one_connection_at_a_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    recording: Counter[uuid.UUID | None] = Counter()
    most: Counter[uuid.UUID | None] = Counter()

    async def record(_conn: Any, delivery: Claimed, _attempt: Attempt, **_: Any) -> Recorded:
        endpoint = delivery.endpoint_id
        recording[endpoint] += 1
        most[endpoint] = max(most[endpoint], recording[endpoint])
        await asyncio.sleep(0.01)
        recording[endpoint] -= 1
        return Recorded("delivered")

    monkeypatch.setattr(service, "record", record)
    pool = Pool()
    dispatcher = service.Dispatcher(
        pool,  # type: ignore[arg-type]
        sender=None,  # type: ignore[arg-type]
        database_url="postgresql://unused/db",
        policy=RetryPolicy(base_s=1, cap_s=1, retry_for_s=60),
        concurrency=16,
        lease_s=15,
        poll_s=1,
        disable_after_s=3600,
    )
    busy, quiet = uuid.uuid4(), uuid.uuid4()
    deliveries = [_claimed(busy) for _ in range(8)] + [_claimed(quiet), _claimed(None)]
    outcomes = await asyncio.gather(
        *(dispatcher._record(d, Attempt(latency_s=0.01, status_code=200)) for d in deliveries)
    )

    assert {o.outcome for o in outcomes} == {"delivered"}
    assert most[busy] == 1
    assert pool.most == 3  # the busy endpoint's turn, the quiet one's, the one without endpoint
    assert dispatcher._turns == {}
