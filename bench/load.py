"""The load generator: submits over HTTP, learns outcomes over one WebSocket (``/ws``)."""

from __future__ import annotations

import asyncio
import gc
import itertools
import statistics
import time
import uuid
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import aiohttp
import orjson

FINAL = {"succeeded", "failed"}
REPLAY_OVERLAP = timedelta(seconds=5)


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
    started: dict[str, float] = field(default_factory=dict)
    """When each request was first seen running (or final, when the push folded the two)."""
    outstanding: set[str] = field(default_factory=set)
    """Submitted, not yet seen final."""
    reconnects: int = 0
    first_submit: float = 0.0
    last_submit: float = 0.0

    def record_submit(self, status: int, payload: bytes, started: float) -> None:
        if status != 202:
            if not self.rejected:
                print(f"first refusal: {status} {payload[:300]!r}")
            self.rejected[status] += 1
            return
        request_id = orjson.loads(payload)["id"]
        self.submit_started[request_id] = started
        if request_id not in self.finished:
            self.outstanding.add(request_id)
        self.submitted += 1
        self.last_submit = time.perf_counter()

    def latencies_ms(self) -> list[float]:
        return sorted(
            (self.finished[i] - t) * 1000
            for i, t in self.submit_started.items()
            if i in self.finished
        )

    def percentile(self, p: float) -> float:
        return _percentile(self.latencies_ms(), p)

    def waits_ms(self) -> list[float]:
        """Submit → started, of every request seen started."""
        return sorted(
            (self.started[i] - t) * 1000
            for i, t in self.submit_started.items()
            if i in self.started
        )

    def wait_percentile(self, p: float) -> float:
        return _percentile(self.waits_ms(), p)

    @property
    def throughput(self) -> float:
        ends = [self.finished[i] for i in self.submit_started if i in self.finished]
        if not ends:
            return 0.0
        return len(ends) / max(max(ends) - self.first_submit, 1e-9)

    @property
    def done_after_first_submit_s(self) -> float:
        """From the first submit to the last request seen final (0 when none was)."""
        return max(self.finished.values(), default=self.first_submit) - self.first_submit

    @property
    def drain_after_last_submit_s(self) -> float:
        ends = [self.finished[i] for i in self.submit_started if i in self.finished]
        return max(ends) - self.last_submit if ends else float("nan")


def _percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=1000, method="inclusive")[int(p * 10) - 1]


async def _watch(http: aiohttp.ClientSession, result: LoadResult, ready: asyncio.Event) -> None:
    """Follow ``/ws``; if the server closes it (a client too far behind is disconnected),
    reconnect with ``since`` a little before the last change seen, so nothing is missed."""
    last_change: str | None = None
    while True:
        url = "/ws"
        if last_change is not None:
            since = datetime.fromisoformat(last_change) - REPLAY_OVERLAP
            url += "?" + urlencode({"since": since.isoformat()})
        async with http.ws_connect(url, heartbeat=None, max_msg_size=0) as ws:
            ready.set()
            async for message in ws:
                if message.type != aiohttp.WSMsgType.TEXT:
                    break
                state = orjson.loads(message.data)
                if last_change is None or state["updated_at"] > last_change:
                    last_change = state["updated_at"]
                if state["status"] == "running" or state["status"] in FINAL:
                    result.started.setdefault(state["id"], time.perf_counter())
                if state["status"] in FINAL and state["id"] not in result.finished:
                    result.finished[state["id"]] = time.perf_counter()
                    result.outstanding.discard(state["id"])
                    if state["status"] == "failed":
                        result.failed += 1
        result.reconnects += 1


async def _as_fast_as_possible(submit_one: Submit, total: int, concurrency: int) -> None:
    remaining = iter(range(total))

    async def connection() -> None:
        for _ in remaining:
            await submit_one()

    await asyncio.gather(*(connection() for _ in range(concurrency)))


Submit = Callable[[], Coroutine[Any, Any, None]]


async def _at_rate(submit_one: Submit, total: int, rate: float) -> None:
    tasks: list[asyncio.Task[None]] = []
    start = time.perf_counter()
    for i in range(total):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(submit_one()))
    await asyncio.gather(*tasks)


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
    result: LoadResult | None = None,
    headers: dict[str, str] | None = None,
) -> LoadResult:
    """Submit ``total`` requests to ``path``: as fast as ``concurrency`` connections allow when
    ``rate`` is None, else at ``rate`` per second, each with ``headers`` besides the key's.
    Returns once every submitted request is final (or ``timeout_s`` after the last submit). A
    caller that passes ``result`` can watch it fill meanwhile (e.g. wait for ``submitted``)."""
    result = result or LoadResult(name=name, offered_rps=rate)
    # The generator's own collector pauses would show up as the system's latency.
    gc.disable()
    try:
        return await _run(
            api_url, key, result, path, total, rate, concurrency, timeout_s, headers or {}
        )
    finally:
        gc.enable()


async def _run(
    api_url: str,
    key: str,
    result: LoadResult,
    path: str,
    total: int,
    rate: float | None,
    concurrency: int,
    timeout_s: float,
    extra_headers: dict[str, str],
) -> LoadResult:
    headers = {"Authorization": f"Bearer {key}"}
    submit_headers = {"content-type": "application/json", **extra_headers}
    run_id = uuid.uuid4().hex[:8]
    counter = itertools.count()
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    async with aiohttp.ClientSession(api_url, headers=headers, connector=connector) as http:
        ready = asyncio.Event()
        watcher = asyncio.create_task(_watch(http, result, ready))
        await ready.wait()

        async def submit_one() -> None:
            body = orjson.dumps({"text": f"{run_id}-{next(counter)}"})
            started = time.perf_counter()
            async with http.post(path, data=body, headers=submit_headers) as response:
                payload = await response.read()
            result.record_submit(response.status, payload, started)

        result.first_submit = time.perf_counter()
        if rate is None:
            await _as_fast_as_possible(submit_one, total, concurrency)
        else:
            await _at_rate(submit_one, total, rate)
        deadline = time.perf_counter() + timeout_s
        while result.outstanding and time.perf_counter() < deadline:
            await asyncio.sleep(0.01)
        result.completed = sum(1 for i in result.submit_started if i in result.finished)
        watcher.cancel()
    return result
