"""``/health`` of the dispatcher: 200 with the backlog while Postgres answers, 503 saying so when
it does not (the process runs on, and dispatches once it is back)."""

from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from libs.accounts import NewUser
from tests.integration.dispatcher.helpers import (
    create_endpoint,
    dispatching,
    queue,
    settings_for,
    wait_for,
)
from tests.integration.recon.conftest import closed_port
from tests.support import ServerUrls


async def test_health_reports_the_backlog(
    servers: ServerUrls, db_pool: "asyncpg.Pool[Any]", user: NewUser
) -> None:
    # Nothing listens there, and the first retry is far off: the delivery stays pending.
    await create_endpoint(db_pool, user.id, f"http://127.0.0.1:{closed_port()}/hook")
    settings = settings_for(servers, webhook_retry_base_s=60.0, webhook_retry_cap_s=60.0)
    async with dispatching(settings) as running:
        await queue(db_pool, user.id, 2)
        await wait_for(lambda: running.dispatcher.report.retried == 2)
        answer = await running.client.get("/health")

    assert answer.status_code == 200
    health = answer.json()
    assert health["status"] == "ok"
    assert health["postgres"] == {"status": "ok", "error": None}
    assert health["backlog"]["pending"] == 2
    assert health["backlog"]["due"] == 0
    assert health["backlog"]["oldest_pending_age_seconds"] >= 0
    assert health["dispatch"]["retried"] == 2
    assert health["dispatch"]["concurrency"] == 8


async def test_without_postgres_health_is_503_and_says_so(servers: ServerUrls) -> None:
    unreachable = make_url(servers.database_url).set(host="127.0.0.1", port=closed_port())
    settings = settings_for(servers, database_url=unreachable.render_as_string(False))
    async with dispatching(settings) as running:
        answer = await running.client.get("/health")

    assert answer.status_code == 503
    health = answer.json()
    assert health["status"] == "unavailable"
    assert health["postgres"]["status"] == "error"
    assert health["postgres"]["error"].startswith("unreachable (")
    assert str(unreachable.port) not in answer.text
    assert health["backlog"] is None
    assert health["dispatch"]["listening"] is False
