"""``listen_forever``: hold a ``LISTEN`` connection of its own on a channel, reconnecting
whenever it drops, for as long as the task runs. What wakes on a notification (the outbox relay,
the webhook dispatcher, the config watcher) also polls, so that what was written while nobody
listened is found: ``on_listening(True)`` says when to look again."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import asyncpg

from libs.db.pool import asyncpg_dsn
from libs.logs import get_logger

log = get_logger(__name__)


async def listen_forever(
    database_url: str,
    channel: str,
    on_notify: Callable[[str], None],
    *,
    reconnect_s: float,
    name: str,
    on_listening: Callable[[bool], None] | None = None,
) -> None:
    """Call ``on_notify(payload)`` for every notification on ``channel``; ``on_listening`` is
    told when the connection starts listening (True) and when it is lost (False). Connection
    failures are logged as ``{name}.listener_cannot_connect`` and retried every
    ``reconnect_s``. Only cancelling the task stops it."""
    while True:
        try:
            conn = await asyncpg.connect(asyncpg_dsn(database_url))
        except (OSError, asyncpg.PostgresError) as exc:
            log.warning(f"{name}.listener_cannot_connect", error=repr(exc))
            await asyncio.sleep(reconnect_s)
            continue
        try:
            await _listen_on(conn, channel, on_notify, on_listening)
        finally:
            if on_listening is not None:
                on_listening(False)
            await conn.close()
        log.warning(f"{name}.listener_lost", reconnecting=True)


async def _listen_on(
    conn: asyncpg.Connection[Any],
    channel: str,
    on_notify: Callable[[str], None],
    on_listening: Callable[[bool], None] | None,
) -> None:
    lost = asyncio.Event()
    conn.add_termination_listener(lambda _c: lost.set())
    await conn.add_listener(channel, lambda _c, _pid, _ch, payload: on_notify(str(payload)))
    if on_listening is not None:
        on_listening(True)
    await lost.wait()
