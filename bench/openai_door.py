"""``python -m bench.openai_door``: what the OpenAI-compatible door costs over the native one, on
the real processes. The same offer (``bench/echo``) is asked three ways, each call with new text:

- ``/svc + /ws``: ``POST /svc/bench/echo``, then its final state from the caller's ``/ws``
  socket (opened once), the fastest way a native client learns a result;
- ``/v1 chat``: ``chat.completions.create`` with the official ``openai`` SDK (waits for the end);
- ``/v1 stream``: the same, ``stream=True``, read to ``[DONE]`` (first chunk time beside it).

One client calling one after the other gives the latency; ``--concurrency`` clients at once the
throughput. Figures in the same run are comparable; across machines they are not.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated

import httpx
import openai
import orjson
import typer
import uvloop
import websockets

from bench.stack import running_stack

cli = typer.Typer(add_completion=False)
Call = Callable[[str], Awaitable[float | None]]


class Native:
    """``/svc`` submits, answered from the caller's ``/ws`` socket."""

    def __init__(self, url: str, key: str) -> None:
        self._http = httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key}"})
        self._ws_url = url.replace("http://", "ws://") + "/ws"
        self._key = key
        self._waiting: dict[str, asyncio.Future[None]] = {}
        self._ended: set[str] = set()
        """Requests whose end came before their submit's answer was read."""
        self._socket: websockets.ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None

    async def open(self) -> None:
        auth = {"Authorization": f"Bearer {self._key}"}
        self._socket = await websockets.connect(self._ws_url, additional_headers=auth)
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self._socket is not None
        async for message in self._socket:
            event = orjson.loads(message)
            if event.get("status") in ("succeeded", "failed"):
                waiter = self._waiting.pop(event.get("id", ""), None)
                if waiter is None:
                    self._ended.add(event.get("id", ""))
                elif not waiter.done():
                    waiter.set_result(None)

    async def call(self, text: str) -> float | None:
        waiter = asyncio.get_running_loop().create_future()
        r = await self._http.post("/svc/bench/echo", json={"text": text})
        r.raise_for_status()
        request_id = r.json()["id"]
        if request_id in self._ended:
            self._ended.discard(request_id)
            return None
        self._waiting[request_id] = waiter
        await waiter
        return None

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
        if self._socket is not None:
            await self._socket.close()
        await self._http.aclose()


def _chat(client: openai.AsyncOpenAI) -> Call:
    async def call(text: str) -> float | None:
        await client.chat.completions.create(
            model="bench/echo", messages=[{"role": "user", "content": text}]
        )
        return None

    return call


def _stream(client: openai.AsyncOpenAI) -> Call:
    async def call(text: str) -> float | None:
        started = time.perf_counter()
        first: float | None = None
        stream = await client.chat.completions.create(
            model="bench/echo", messages=[{"role": "user", "content": text}], stream=True
        )
        async for chunk in stream:
            if first is None and chunk.choices and chunk.choices[0].delta.content:
                first = time.perf_counter() - started
        return first

    return call


async def _measure(
    call: Call, *, calls: int, concurrency: int
) -> tuple[list[float], float, list[float]]:
    """Latencies (s), throughput (calls/s) and first-chunk times of ``calls`` calls made by
    ``concurrency`` clients at once."""
    latencies: list[float] = []
    firsts: list[float] = []
    queue = iter(range(calls))

    async def client() -> None:
        for _ in queue:
            started = time.perf_counter()
            first = await call(f"bench {uuid.uuid4()}")
            latencies.append(time.perf_counter() - started)
            if first is not None:
                firsts.append(first)

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    return latencies, calls / (time.perf_counter() - started), firsts


def _ms(values: list[float], q: int) -> str:
    if not values:
        return "-"
    cut = (
        statistics.quantiles(values, n=100, method="inclusive") if len(values) > 1 else values * 99
    )
    return f"{cut[q - 1] * 1000:.1f}"


async def _run(url: str, key: str, *, calls: int, concurrency: int) -> None:
    native = Native(url, key)
    await native.open()
    limits = openai.DefaultAsyncHttpxClient(timeout=60)
    sdk = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key=key, http_client=limits)
    ways: dict[str, Call] = {
        "/svc + /ws": native.call,
        "/v1 chat": _chat(sdk),
        "/v1 stream": _stream(sdk),
    }
    header = f"{'door':<12}{'clients':>8}{'calls/s':>9}{'p50 ms':>9}{'p95 ms':>9}{'first p50':>11}"
    print(header)
    print("-" * len(header))
    try:
        for clients in (1, concurrency):
            for name, call in ways.items():
                await _measure(call, calls=20, concurrency=clients)  # warm up
                latencies, rate, firsts = await _measure(call, calls=calls, concurrency=clients)
                print(
                    f"{name:<12}{clients:>8}{rate:>9.0f}{_ms(latencies, 50):>9}"
                    f"{_ms(latencies, 95):>9}{_ms(firsts, 50):>11}"
                )
    finally:
        await sdk.close()
        await native.close()


@cli.command()
def main(
    calls: Annotated[int, typer.Option(help="Calls measured per door and concurrency")] = 300,
    concurrency: Annotated[int, typer.Option(help="Clients at once, for throughput")] = 16,
) -> None:
    with running_stack(api_workers=1, workers=1) as stack:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            key = runner.run(stack.new_user("openai-door"))
            print(f"stack: relai-api, 1 x relai-worker at {stack.url}; {calls} calls per row")
            runner.run(_run(stack.url, key, calls=calls, concurrency=concurrency))


if __name__ == "__main__":
    cli()
