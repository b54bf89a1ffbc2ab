"""``python -m bench.webhooks``: how soon a server learns that a request ended, by webhook and
by WebSocket, on the real processes (the API, a worker and ``relai-dispatcher``).

The same requests (``POST /svc/bench/echo``, each with new text) are watched both ways at once:
the caller's ``/ws`` socket, opened once, and a webhook endpoint of the caller's on a receiver
in this process that verifies every delivery with ``standardwebhooks``. Each row gives, from the
submit, when the final state was known each way, and the webhook's lag behind the socket. One
client submitting after the other gives the latency; ``--concurrency`` clients at once show
what the dispatcher keeps up with. Figures in the same run are comparable; across machines they
are not.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from dataclasses import dataclass, field
from typing import Annotated

import httpx
import orjson
import typer
import uvloop
import websockets
from aiohttp import web
from standardwebhooks.webhooks import Webhook

from bench.stack import free_port, running_stack

cli = typer.Typer(add_completion=False)


@dataclass
class Watch:
    """When each request was submitted, and when its end was known by socket and by hook."""

    submitted: dict[str, float] = field(default_factory=dict)
    by_socket: dict[str, float] = field(default_factory=dict)
    by_hook: dict[str, float] = field(default_factory=dict)
    rejected: int = 0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def note(self, where: dict[str, float], request_id: str) -> None:
        where.setdefault(request_id, time.perf_counter())
        self.arrived.set()


class Receiver:
    """A webhook endpoint as an integrator writes one: verify, then answer 204."""

    def __init__(self, watch: Watch) -> None:
        self.watch = watch
        self.port = free_port()
        self.verifier: Webhook | None = None
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        assert self.verifier is not None
        try:
            event = self.verifier.verify(body, dict(request.headers))
        except Exception:
            self.watch.rejected += 1
            return web.Response(status=400)
        self.watch.note(self.watch.by_hook, event["data"]["id"])
        return web.Response(status=204)


async def _socket(url: str, key: str, watch: Watch) -> None:
    auth = {"Authorization": f"Bearer {key}"}
    ws_url = url.replace("http://", "ws://") + "/ws"
    async with websockets.connect(ws_url, additional_headers=auth) as ws:
        async for message in ws:
            event = orjson.loads(message)
            if event.get("status") in ("succeeded", "failed"):
                watch.note(watch.by_socket, event["id"])


async def _until_known(watch: Watch, request_id: str) -> None:
    while request_id not in watch.by_socket or request_id not in watch.by_hook:
        watch.arrived.clear()
        await asyncio.wait_for(watch.arrived.wait(), timeout=30)


async def _measure(http: httpx.AsyncClient, watch: Watch, *, calls: int, clients: int) -> float:
    """Submit ``calls`` requests from ``clients`` clients, each waiting until its request's end
    is known both ways; returns the requests per second."""
    queue = iter(range(calls))

    async def client() -> None:
        for _ in queue:
            started = time.perf_counter()
            r = await http.post("/svc/bench/echo", json={"text": f"bench {uuid.uuid4()}"})
            r.raise_for_status()
            request_id = r.json()["id"]
            watch.submitted[request_id] = started
            await _until_known(watch, request_id)

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return calls / (time.perf_counter() - started)


def _ms(values: list[float], q: int) -> str:
    if len(values) == 1:
        return f"{values[0] * 1000:.1f}"
    cut = statistics.quantiles(values, n=100, method="inclusive")
    return f"{cut[q - 1] * 1000:.1f}"


def _row(watch: Watch, ids: list[str], clients: int, rate: float) -> str:
    socket = [watch.by_socket[i] - watch.submitted[i] for i in ids]
    hook = [watch.by_hook[i] - watch.submitted[i] for i in ids]
    lag = [watch.by_hook[i] - watch.by_socket[i] for i in ids]
    return (
        f"{clients:>8}{rate:>9.0f}{_ms(socket, 50):>11}{_ms(socket, 95):>11}"
        f"{_ms(hook, 50):>10}{_ms(hook, 95):>10}{_ms(lag, 50):>10}{_ms(lag, 95):>10}"
    )


async def _run(url: str, key: str, *, calls: int, concurrency: int) -> None:
    watch = Watch()
    receiver = Receiver(watch)
    await receiver.start()
    auth = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=url, headers=auth, timeout=30) as http:
        r = await http.post("/webhooks", json={"url": receiver.url})
        r.raise_for_status()
        receiver.verifier = Webhook(r.json()["secret"])
        socket = asyncio.create_task(_socket(url, key, watch))
        header = (
            f"{'clients':>8}{'req/s':>9}{'ws p50 ms':>11}{'ws p95 ms':>11}"
            f"{'hook p50':>10}{'hook p95':>10}{'lag p50':>10}{'lag p95':>10}"
        )
        print(header)
        print("-" * len(header))
        try:
            for clients in (1, concurrency):
                await _measure(http, watch, calls=20, clients=clients)  # warm up
                before = set(watch.submitted)
                rate = await _measure(http, watch, calls=calls, clients=clients)
                ids = [i for i in watch.submitted if i not in before]
                print(_row(watch, ids, clients, rate))
        finally:
            socket.cancel()
            await receiver.stop()
    if watch.rejected:
        raise SystemExit(f"{watch.rejected} deliveries failed verification")


@cli.command()
def main(
    calls: Annotated[int, typer.Option(help="Requests measured per row")] = 300,
    concurrency: Annotated[int, typer.Option(help="Clients at once, for throughput")] = 16,
) -> None:
    # The receiver listens on this host, which the SSRF guard lets through only when allowed.
    env = {"RELAI_SSRF_ALLOW": '["127.0.0.1"]'}
    with running_stack(api_workers=1, workers=1, dispatchers=1, env=env) as stack:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            key = runner.run(stack.new_user("webhooks"))
            print(
                f"stack: relai-api, 1 x relai-worker, 1 x relai-dispatcher at {stack.url}; "
                f"{calls} requests per row, each known by /ws and by webhook; times from submit"
            )
            runner.run(_run(stack.url, key, calls=calls, concurrency=concurrency))


if __name__ == "__main__":
    cli()
