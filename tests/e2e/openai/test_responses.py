"""Responses in background mode with the official ``openai`` SDK against the real processes:
polled, cancelled, a dropped stream resumed; and a completion whose workers are killed while it
streams."""

import asyncio
import time
from typing import Any

import asyncpg
import openai
import pytest

from libs.catalog import CatalogSpec, apply_catalog
from services.cli.launcher import ChildSpec, console_script
from tests.e2e.conftest import WORKERS, Stack, bootstrap
from tests.e2e.openai.conftest import WORDS, ledger_of, request_id_of
from tests.integration.api.conftest import free_port

pytestmark = pytest.mark.e2e


async def test_a_background_response_is_polled_until_completed(sdk: openai.AsyncOpenAI) -> None:
    created = await sdk.responses.create(model="chat/words", input=WORDS, background=True)
    assert created.status in ("queued", "in_progress")
    deadline = time.monotonic() + 30
    response = created
    while response.status in ("queued", "in_progress"):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
        response = await sdk.responses.retrieve(created.id)
    assert response.status == "completed"
    assert response.output_text == WORDS
    # Without background, the same call answers once it has ended.
    again = await sdk.responses.create(model="chat/words", input=WORDS)
    assert (again.id, again.status, again.output_text) == (created.id, "completed", WORDS)


async def test_a_background_response_is_cancelled_and_refunded(
    sdk: openai.AsyncOpenAI, db_pool: "asyncpg.Pool[Any]"
) -> None:
    created = await sdk.responses.create(model="chat/slow", input="take your time", background=True)
    cancelled = await sdk.responses.cancel(created.id)
    assert cancelled.status == "cancelled"
    assert (await sdk.responses.retrieve(created.id)).status == "cancelled"
    assert (await sdk.responses.cancel(created.id)).status == "cancelled"
    assert await ledger_of(db_pool, request_id_of(created.id)) == {"reserve": 3, "refund": 3}


async def test_a_dropped_stream_resumes_after_the_last_event_seen(
    sdk: openai.AsyncOpenAI,
) -> None:
    text = " ".join(f"w{i}" for i in range(40))
    created = await sdk.responses.create(model="chat/words", input=text, background=True)
    seen: list[Any] = []
    stream = await sdk.responses.retrieve(created.id, stream=True)
    async for event in stream:
        seen.append(event)
        if event.type == "response.output_text.delta" and len(seen) >= 8:
            break
    await stream.close()  # the connection drops mid-answer
    last = seen[-1].sequence_number

    resumed = await sdk.responses.retrieve(created.id, stream=True, starting_after=last)
    rest = [event async for event in resumed]
    numbers = [e.sequence_number for e in seen + rest]
    assert numbers == list(range(len(numbers)))  # nothing lost, nothing repeated
    assert rest[0].sequence_number == last + 1
    deltas = [e.delta for e in seen + rest if e.type == "response.output_text.delta"]
    assert "".join(deltas) == text
    assert rest[-1].type == "response.completed"
    assert rest[-1].response.output_text == text


async def test_a_worker_killed_mid_stream_ends_the_request_once_and_the_stream_in_an_error(
    stack: Stack, catalog: None, db_pool: "asyncpg.Pool[Any]"
) -> None:
    """kill -9 of the workers while a completion streams: the client gets an error event (not
    a hang), recon re-drives the request to a new worker, and it ends exactly once."""
    async with db_pool.acquire() as conn:
        await apply_catalog(conn, SLOW_STREAM, prune=False)
    recon_env = {
        "RELAI_RECON_PORT": str(free_port()),
        "RELAI_RECON_COMPLETION_INTERVAL_S": "0.5",
        "RELAI_RECON_STUCK_AFTER_S": "3",
        **bootstrap("recon"),
    }
    stack.supervisor.start(ChildSpec("relai-recon", [console_script("relai-recon")], recon_env))
    text = " ".join(f"word{i}" for i in range(30))
    async with openai.AsyncOpenAI(
        base_url=f"{stack.url}/v1", api_key=stack.user.api_key, timeout=60, max_retries=0
    ) as client:
        stream = await client.chat.completions.create(
            model="chat/crawl", messages=[{"role": "user", "content": text}], stream=True
        )
        pieces: list[str] = []
        ids: set[str] = set()

        async def read() -> None:
            async for chunk in stream:
                ids.add(chunk.id)
                if chunk.choices and chunk.choices[0].delta.content:
                    pieces.append(chunk.choices[0].delta.content)
                    if len(pieces) == 3:
                        for n in range(1, WORKERS + 1):
                            stack.kill(f"relai-worker-{n}")
                        worker = [console_script("relai-worker")]
                        spec = ChildSpec("relai-worker-new", worker, bootstrap("worker"))
                        stack.supervisor.start(spec)

        with pytest.raises(openai.APIError, match="started over"):
            await read()
        (completion_id,) = ids
        request_id = request_id_of(completion_id)
    assert "".join(pieces) == text[: len("".join(pieces))]

    deadline = time.monotonic() + 60
    while (
        status := await db_pool.fetchval("SELECT status FROM requests WHERE id = $1", request_id)
    ) != "succeeded":
        assert time.monotonic() < deadline, status
        await asyncio.sleep(0.2)
    assert await ledger_of(db_pool, request_id) == {"reserve": 1, "settle": 1}
    results = await db_pool.fetchval("SELECT results FROM requests WHERE id = $1", request_id)
    assert results == [text]


SLOW_STREAM = CatalogSpec.model_validate(
    {
        "handlers": [{"id": "echo.stream"}],
        "offers": [
            {
                "service": "chat",
                "action": "crawl",
                "price": 1,
                "prompt_template": "{text}",
                "handler": "echo.stream",
                "params": {"delay_ms": 200},
            }
        ],
    }
)
