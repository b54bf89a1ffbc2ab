"""The load generator: submits over HTTP, learns outcomes over one WebSocket (``/ws``)."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
import statistics
import time
import uuid
from dataclasses import dataclass, field

import aiohttp
import orjson

FINAL = {"succeeded", "failed"}


@dataclass
class LoadResult:
    name: str
    offered_rps: float | None
    submitted: int = 0
    rejected: Counter[int] = field(default_factory=Counter)
    """Answers other than 202, by status code."""
    completed: int = 0
    failed: int = 0
    submit_started: dict[str, float] = field(default_factory=dict)
    finished: dict[str, float] = field(default_factory=dict)
    first_submit: float = 0.0
    last_submit: float = 0.0

    def latencies_ms(self) -> list[float]:
        return sorted(
            (self.finished[i] - t) * 1000
            for i, t in self.submit_started.items()
            if i in self.finished
        )

    def percentile(self, p: float) -> float:
        values = self.latencies_ms()
        if not values:
            return float("nan")
        if len(values) == 1:
            return values[0]
        return statistics.quantiles(values, n=1000, method="inclusive")[int(p * 10) - 1]

    @property
    def throughput(self) -> float:
        ends = [self.finished[i] for i in self.submit_started if i in self.finished]
        if not ends:
            return 0.0
        return len(ends) / max(max(ends) - self.first_submit, 1e-9)

    @property
    def drain_after_last_submit_s(self) -> float:
        ends = [self.finished[i] for i in self.submit_started if i in self.finished]
        return max(ends) - self.last_submit if ends else float("nan")


async def _watch(
    ws: aiohttp.ClientWebSocketResponse, result: LoadResult, ready: asyncio.Event
) -> None:
    ready.set()
    async for message in ws:
        if message.type != aiohttp.WSMsgType.TEXT:
            break
        state = orjson.loads(message.data)
        if state["status"] in FINAL:
            result.finished.setdefault(state["id"], time.perf_counter())
            if state["status"] == "failed":
                result.failed += 1


async def run_load(
    api_url: str,
    key: str,
    *,
    name: str,
    path: str,
    total: int,
    rate: float | None = None,
    concurrency: int = 64,
    timeout_s: float = 120.0,
) -> LoadResult:
    """Submit ``total`` requests to ``path``: as fast as ``concurrency`` connections allow when
    ``rate`` is None, else at ``rate`` per second. Returns once every submitted request is final
    (or ``timeout_s`` after the last submit)."""
    result = LoadResult(name=name, offered_rps=rate)
    headers = {"Authorization": f"Bearer {key}"}
    run_id = uuid.uuid4().hex[:8]
    counter = itertools.count()
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    async with aiohttp.ClientSession(api_url, headers=headers, connector=connector) as http:
        ws = await http.ws_connect("/ws", heartbeat=None, max_msg_size=0)
        ready = asyncio.Event()
        watcher = asyncio.create_task(_watch(ws, result, ready))
        await ready.wait()

        async def submit_one() -> None:
            body = orjson.dumps({"text": f"{run_id}-{next(counter)}"})
            started = time.perf_counter()
            async with http.post(
                path, data=body, headers={"content-type": "application/json"}
            ) as response:
                payload = await response.read()
            if response.status != 202:
                result.rejected[response.status] += 1
                if len(result.rejected) == 1 and result.rejected[response.status] == 1:
                    print(f"first rejection: {response.status} {payload[:300]!r}")
                return
            result.submit_started[orjson.loads(payload)["id"]] = started
            result.submitted += 1
            result.last_submit = time.perf_counter()

        result.first_submit = time.perf_counter()
        if rate is None:
            remaining = iter(range(total))

            async def worker() -> None:
                for _ in remaining:
                    await submit_one()

            await asyncio.gather(*(worker() for _ in range(concurrency)))
        else:
            tasks = []
            start = time.perf_counter()
            for i in range(total):
                delay = start + i / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(submit_one()))
            await asyncio.gather(*tasks)

        deadline = time.perf_counter() + timeout_s
        while time.perf_counter() < deadline:
            if all(i in result.finished for i in result.submit_started):
                break
            await asyncio.sleep(0.01)
        result.completed = sum(1 for i in result.submit_started if i in result.finished)
        watcher.cancel()
        await ws.close()
    return result
