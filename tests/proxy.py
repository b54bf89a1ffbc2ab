"""A TCP proxy that a test can cut and restore: a server vanishing, as its clients see it."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import make_url


@dataclass
class TcpProxy:
    """Forwards 127.0.0.1:<port> to a TCP address, or to a Unix socket when ``unix_path``."""

    target_host: str | None = None
    target_port: int | None = None
    unix_path: str | None = None
    port: int = 0
    _server: asyncio.Server | None = None
    _pipes: set[asyncio.StreamWriter] = field(default_factory=set)

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def cut(self) -> None:
        """Refuse new connections and drop every open one."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._pipes):
            writer.transport.abort()
        self._pipes.clear()

    async def restore(self) -> None:
        await self.start()

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
