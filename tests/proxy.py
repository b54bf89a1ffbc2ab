"""A TCP proxy that a test can cut and restore: a server vanishing, as its clients see it.

It forwards on an event loop of its own, in a thread of its own: the test's loop may be busy
(a load generator with thousands of requests in flight), and a proxy sharing that loop would
answer late or not at all, a database stalled by the test itself rather than by the system under
test."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy.engine import make_url

T = TypeVar("T")


@dataclass
class TcpProxy:
    """Forwards 127.0.0.1:<port> to a TCP address, or to a Unix socket when ``unix_path``."""

    target_host: str | None = None
    target_port: int | None = None
    unix_path: str | None = None
    port: int = 0
    _server: asyncio.Server | None = None
    _pipes: set[asyncio.StreamWriter] = field(default_factory=set)
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None

    async def start(self) -> int:
        """Listen (on ``port``, a free one if 0) and forward, on the proxy's own loop."""
        if self._loop is None:
            loop = asyncio.new_event_loop()
            self._thread = threading.Thread(
                target=loop.run_forever, name=f"proxy-{self.port}", daemon=True
            )
            self._loop = loop
            self._thread.start()
        await self._on_own_loop(self._start())
        return self.port

    async def cut(self) -> None:
        """Refuse new connections and drop every open one."""
        if self._loop is None:
            return
        await self._on_own_loop(self._cut())
        loop, thread = self._loop, self._thread
        self._loop = self._thread = None
        loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            await asyncio.to_thread(thread.join)
        loop.close()

    async def restore(self) -> None:
        await self.start()

    async def _on_own_loop(self, coro: Coroutine[Any, Any, T]) -> T:
        assert self._loop is not None
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self._loop))

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _cut(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._pipes):
            writer.transport.abort()
        self._pipes.clear()
        # What still forwards or connects ends now, before the loop stops.
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)
        if server is not None:
            await server.wait_closed()

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.unix_path is not None:
            return await asyncio.open_unix_connection(self.unix_path)
        assert self.target_host is not None
        assert self.target_port is not None
        return await asyncio.open_connection(self.target_host, self.target_port)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await self._connect()
        except OSError:
            writer.transport.abort()
            return
        self._pipes.update((writer, up_writer))
        await asyncio.gather(
            self._pump(reader, up_writer), self._pump(up_reader, writer), return_exceptions=True
        )

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            self._pipes.discard(writer)
            with contextlib.suppress(Exception):
                writer.transport.abort()


def proxy_for(url: str, default_port: int) -> TcpProxy:
    """A proxy (not started) to the server of ``url``: its TCP address, or its Unix socket when the
    URL names a socket directory in ``?host=`` (the embedded Postgres listens only there)."""
    parsed = make_url(url)
    socket_dir = parsed.query.get("host")
    if isinstance(socket_dir, str) and socket_dir.startswith("/"):
        return TcpProxy(unix_path=str(Path(socket_dir) / f".s.PGSQL.{parsed.port or 5432}"))
    return TcpProxy(target_host=parsed.host or "127.0.0.1", target_port=parsed.port or default_port)


def through(url: str, proxy: TcpProxy) -> str:
    """``url`` pointed at ``proxy`` instead of its server; its other options kept."""
    return (
        make_url(url)
        .difference_update_query(["host", "port"])
        .set(host="127.0.0.1", port=proxy.port)
        .render_as_string(hide_password=False)
    )
