"""A poison task for real: a handler (installed as a plugin package) that kills the worker
process running it. Workers started one after another each die on it (twice as usual, then in
quarantine), until one finds it took ``RELAI_WORKER_MAX_CRASHES`` workers down in quarantine
and moves it to the dead letters."""

import asyncio
import os
import signal
from pathlib import Path

import pytest
from redis.asyncio import Redis

from libs.contracts import TASKS_GROUP, TASKS_STREAM
from libs.streams import ensure_group
from services.cli.launcher import console_script
from tests.fakes.plugins import install_plugin
from tests.integration.worker.helpers import (
    add_tasks,
    dead_letters,
    finals,
    pending,
    read_results,
    task,
    wait_finals,
)
from tests.support import ServerUrls

pytestmark = pytest.mark.e2e

CRASH = """
    import os

    class Crash:
        async def execute(self, job, ctx):
            os._exit(70)
"""


async def test_a_task_that_kills_its_worker_is_dead_lettered_after_max_crashes_in_quarantine(
    servers: ServerUrls, redis_client: Redis, tmp_path: Path
) -> None:
    install_plugin(tmp_path, CRASH, {"crash.now": "{module}:Crash"})
    env = {
        **os.environ,
        "REDIS_URL": servers.redis_url,
        "PYTHONPATH": str(tmp_path),
        "RELAI_LOG_LEVEL": "WARNING",
        "RELAI_WORKER_VISIBILITY_TIMEOUT_S": "0.5",
        "RELAI_WORKER_RECLAIM_INTERVAL_S": "0.2",
        "RELAI_WORKER_BLOCK_MS": "200",
        "RELAI_WORKER_MAX_CRASHES": "1",
        "RELAI_WORKER_METRICS_PORT": "0",
    }
    await ensure_group(redis_client, TASKS_STREAM, TASKS_GROUP)
    poison = task("crash.now", prompt="poison")
    await add_tasks(redis_client, [poison])

    codes = []
    for _ in range(3):
        crashed = await asyncio.create_subprocess_exec(console_script("relai-worker"), env=env)
        codes.append(await asyncio.wait_for(crashed.wait(), 60))
    survivor = await asyncio.create_subprocess_exec(console_script("relai-worker"), env=env)
    try:
        (failed,) = finals(await wait_finals(redis_client, 1, timeout=60))
        survivor.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(survivor.wait(), 20) == 0
    finally:
        if survivor.returncode is None:
            survivor.kill()
            await survivor.wait()

    assert codes == [70, 70, 70]
    assert (failed.request_id, failed.kind) == (poison.request_id, "failed")
    assert "delivered 3 times and never finished" in (failed.error or "")
    (dead,) = await dead_letters(redis_client)
    assert (dead[1][b"deliveries"], dead[1][b"crashes"]) == (b"3", b"1")
    assert [r.kind for r in finals(await read_results(redis_client))] == ["failed"]
    assert await pending(redis_client) == 0
