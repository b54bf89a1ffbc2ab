"""The health report: the Postgres probe bounded in time, a failure reported, not raised."""

from __future__ import annotations

import asyncio

from libs.db import PgPool
from libs.logs import get_logger
from services.dispatcher.delivery.service import DispatchReport
from services.dispatcher.health import repository
from services.dispatcher.health.schemas import Backlog, Dispatching, Health, Probe

log = get_logger(__name__)


async def check_health(
    *, pool: PgPool, timeout: float, report: DispatchReport, concurrency: int
) -> Health:
    probe, backlog = await _probe_postgres(pool, timeout)
    return Health(
        status="ok" if probe.status == "ok" else "unavailable",
        postgres=probe,
        backlog=backlog,
        dispatch=Dispatching(
            listening=report.listening,
            in_flight=report.in_flight,
            concurrency=concurrency,
            delivered=report.delivered,
            retried=report.retried,
            failed=report.failed,
            endpoints_disabled=report.endpoints_disabled,
            stale=report.stale,
            last_error=report.last_error,
        ),
    )


async def _probe_postgres(pool: PgPool, timeout: float) -> tuple[Probe, Backlog | None]:
    async def read() -> Backlog:
        async with pool.acquire() as conn:
            return await repository.read_backlog(conn)

    try:
        backlog = await asyncio.wait_for(read(), timeout)
    except TimeoutError:
        return Probe(status="error", error=f"no answer within {timeout:g}s"), None
    except Exception as exc:
        # The kind of failure only: its text names internal hosts and users (the log has it).
        log.warning("health.probe_failed", error=repr(exc))
        return Probe(status="error", error=f"unreachable ({type(exc).__name__})"), None
    return Probe(status="ok"), backlog
