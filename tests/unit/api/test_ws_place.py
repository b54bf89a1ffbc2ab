"""``/ws/requests/{id}``'s places in the queue: sent when they change while the request is
pending; a failed lookup stops the places and leaves the socket to the states."""

import asyncio
import uuid
from typing import Any

import asyncpg
import orjson

from libs.contracts import RequestStatus, status_rank
from services.api.ws.states import send_place

PENDING = status_rank(RequestStatus.PENDING)


class _Socket:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def send_text(self, text: str) -> None:
        self.sent.append(orjson.loads(text))


class _Pool:
    """Answers each place lookup with the next of ``rows`` (an exception is raised)."""

    def __init__(self, *rows: dict[str, int] | Exception) -> None:
        self._rows = list(rows)

    async def fetchrow(self, *_: object) -> dict[str, int]:
        row = self._rows.pop(0)
        if isinstance(row, Exception):
            raise row
        return row


async def test_a_place_is_sent_when_it_changes_and_a_failed_lookup_stops_the_places() -> None:
    request_id = uuid.uuid4()
    ranks = {request_id: PENDING}
    socket = _Socket()
    pool = _Pool(
        {"ahead": 2, "ended": 0},  # as sent with the first state: nothing new
        {"ahead": 1, "ended": 0},
        asyncpg.PostgresConnectionError("the server went away"),
        {"ahead": 0, "ended": 0},  # never asked for
    )
    await asyncio.wait_for(
        send_place(
            socket,  # type: ignore[arg-type]
            pool,  # type: ignore[arg-type]
            request_id,
            ranks,
            asyncio.Lock(),
            0.001,
            (3, None),
        ),
        5,
    )
    assert socket.sent == [
        {"event": "queue", "id": str(request_id), "queue_position": 2, "queue_eta_s": None}
    ]
    assert ranks == {request_id: PENDING}  # the states go on: only the places stopped


async def test_no_place_follows_the_end_of_the_wait() -> None:
    request_id = uuid.uuid4()
    ranks = {request_id: PENDING}
    socket = _Socket()

    class Started(_Pool):
        async def fetchrow(self, *args: object) -> dict[str, int]:
            ranks[request_id] = status_rank(RequestStatus.RUNNING)  # it started meanwhile
            return await super().fetchrow(*args)

    await asyncio.wait_for(
        send_place(
            socket,  # type: ignore[arg-type]
            Started({"ahead": 0, "ended": 0}),  # type: ignore[arg-type]
            request_id,
            ranks,
            asyncio.Lock(),
            0.001,
            (3, None),
        ),
        5,
    )
    assert socket.sent == []
