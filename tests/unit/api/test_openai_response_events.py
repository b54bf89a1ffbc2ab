"""The numbering of a response's events follows from the request alone: whatever state a client
first saw it in, and wherever it resumes, the events after ``N`` are the same ones."""

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from services.api.openai import responses
from services.api.openai.follow import Chunk, Final, Tick

ID = uuid.UUID(int=7)
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _row(status: str, *, started: bool, results: list[str] | None = None) -> dict[str, Any]:
    return {
        "id": ID,
        "service": "chat",
        "action": "words",
        "status": status,
        "results": results,
        "error": "it broke" if status == "failed" else None,
        "usage": {"input_tokens": 2, "output_tokens": 2} if results else None,
        "attempt": 1,
        "created_at": NOW,
        "started_at": NOW if started else None,
        "deal_id": None,
        "tier": "default",
        "served_tier": "default" if started else None,
    }


async def _events(first: dict[str, Any], items: list[Any], after: int = -1) -> list[dict[str, Any]]:
    async def feed() -> AsyncIterator[Chunk | Tick | Final]:
        for item in items:
            yield item

    out = []
    async for raw in responses.events(first, feed(), starting_after=after):  # type: ignore[arg-type]
        if raw.startswith(b"event: "):
            out.append(orjson.loads(raw.split(b"data: ", 1)[1]))
    return out


CHUNKS = [Chunk(f"1-{i}", 1, word, i) for i, word in enumerate(["a ", "b"])]
DONE = Final(_row("succeeded", started=True, results=["a b"]))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("first", "items"),
    [
        (_row("pending", started=False), [*CHUNKS, DONE]),
        (_row("running", started=True), [*CHUNKS, DONE]),
        (DONE.row, [*CHUNKS, DONE]),
        (_row("pending", started=False), [DONE]),  # an answer written at once
        (_row("pending", started=False), [Final(_row("cancelled", started=False))]),  # type: ignore[arg-type]
        (_row("running", started=True), [Final(_row("failed", started=True))]),  # type: ignore[arg-type]
    ],
)
async def test_a_resumed_stream_gives_exactly_the_events_after_the_last_one_seen(
    first: dict[str, Any], items: list[Any]
) -> None:
    whole = await _events(first, items)
    assert [e["sequence_number"] for e in whole] == list(range(len(whole)))
    for last in range(len(whole)):
        # A client that saw events 0..last, then came back later, when the request had ended.
        end = items[-1].row
        assert await _events(end, items, after=last) == whole[last + 1 :]


async def test_the_deltas_are_the_chunks_and_the_stream_ends_completed() -> None:
    events = await _events(_row("pending", started=False), [*CHUNKS, DONE])
    kinds = [e["type"] for e in events]
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert [e["delta"] for e in events if e["type"] == "response.output_text.delta"] == ["a ", "b"]
    assert events[4]["sequence_number"] == 4  # chunk i is event 4 + i
    assert kinds[-1] == "response.completed"
    assert events[-1]["response"]["output"][0]["content"][0]["text"] == "a b"


async def test_a_job_that_starts_over_ends_the_stream_failed() -> None:
    again = Chunk("1-9", 1, "a ", 0)  # the same attempt, written from the start again
    events = await _events(_row("running", started=True), [*CHUNKS, again, DONE])
    assert events[-1]["type"] == "response.failed"
    assert "started over" in events[-1]["response"]["error"]["message"]
