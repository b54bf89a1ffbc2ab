"""The real ``relai-worker`` process, started the way an operator starts it."""

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

from redis.asyncio import Redis

from tests.integration.worker.helpers import add_tasks, finals, pending, task, wait_finals
from tests.support import ServerUrls

WORKER = Path(sys.executable).parent / "relai-worker"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


async def test_the_worker_process_runs_tasks_and_exits_0_on_sigterm(
    servers: ServerUrls, redis_client: Redis
) -> None:
    env = {
        **os.environ,
        "DATABASE_URL": servers.database_url,
        "REDIS_URL": servers.redis_url,
        "RELAI_WORKER_NAME": "proc-1",
        "RELAI_WORKER_VISIBILITY_TIMEOUT_S": "2",
        "RELAI_WORKER_BLOCK_MS": "200",
    }
    process = await asyncio.create_subprocess_exec(
        str(WORKER), env=env, stderr=asyncio.subprocess.PIPE
    )
    try:
        ok = task(prompt="from the process", create_qty=2)
        flaky = task("echo.delay", failure_rate=1.0, traceparent=f"00-{TRACE_ID}-{'1' * 16}-01")
        await add_tasks(redis_client, [ok, flaky])
        results = await wait_finals(redis_client, 2, timeout=15)
        process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(process.wait(), 10)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.stderr is not None
    logs = [json.loads(line) for line in (await process.stderr.read()).splitlines()]

    assert code == 0
    outcome = {r.request_id: (r.kind, r.results, r.error, r.worker) for r in finals(results)}
    assert outcome == {
        ok.request_id: ("succeeded", ["from the process"] * 2, None, "proc-1"),
        flaky.request_id: ("failed", None, "simulated failure", "proc-1"),
    }
    assert await pending(redis_client) == 0
    events = {line["event"] for line in logs}
    assert {"worker.starting", "worker.stopping", "worker.stopped"} <= events
    (failure,) = [line for line in logs if line["event"] == "job.failed"]
    assert failure["request_id"] == str(flaky.request_id)
    assert failure["trace_id"] == TRACE_ID  # from the task's traceparent, tracing off
    assert failure["service"] == "worker"
