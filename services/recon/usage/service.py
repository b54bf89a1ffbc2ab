"""The usage loop: every minute, fold the requests (and deal steps) that ended into hourly rows
per user, offer, handler and integration, and export this hour's totals by handler and
integration, and by offer (credits settled and what they cost the operator).

A request counts once it has ended, ``RELAI_RECON_USAGE_LAG_S`` has passed, and no transaction
that began before it ended is still open (its ending is stamped with its writer's transaction
start, so it is surely committed by then); a mark in Postgres says how far the aggregation has
got, so each ending is counted exactly once across runs and replicas, however late it commits."""

from __future__ import annotations

from libs.db import DATABASE_ERRORS, PgPool
from libs.loops import every
from services.recon.metrics.registry import (
    USAGE_CREDITS,
    USAGE_OFFER_COST,
    USAGE_OFFER_CREDITS,
    USAGE_TOKENS,
)
from services.recon.usage import repository


class UsageLoop:
    def __init__(self, pool: PgPool, *, interval_s: float, lag_s: float) -> None:
        self._pool = pool
        self._interval_s = interval_s
        self._lag_s = lag_s

    async def run_forever(self) -> None:
        await every(self._interval_s, self.run_once, name="usage", expected=DATABASE_ERRORS)

    async def run_once(self) -> int:
        """Aggregate what is due; returns how many hourly rows were written or added to."""
        async with self._pool.acquire() as conn:
            async with conn.transaction():
                rows = await repository.aggregate(conn, lag_s=self._lag_s)
            hour = await repository.current_hour(conn)
            by_offer = await repository.current_hour_by_offer(conn)
        USAGE_CREDITS.clear()
        USAGE_TOKENS.clear()
        for r in hour:
            USAGE_CREDITS.labels(r["handler_id"], r["integration"]).set(r["credits"])
            USAGE_TOKENS.labels(r["handler_id"], r["integration"], "input").set(r["input_tokens"])
            USAGE_TOKENS.labels(r["handler_id"], r["integration"], "output").set(r["output_tokens"])
        USAGE_OFFER_CREDITS.clear()
        USAGE_OFFER_COST.clear()
        for r in by_offer:
            USAGE_OFFER_CREDITS.labels(r["offer"]).set(r["credits"])
            USAGE_OFFER_COST.labels(r["offer"]).set(r["cost"])
        return rows
