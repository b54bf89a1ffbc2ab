"""A stateful property test of the credit ledger against the real Postgres statements: random
submissions (offers and deals, affordable or not, often duplicates), successes, failures and
repeated deliveries of them, expiries and grants. After every step, for every user,
``balance == grants - reserves + releases + refunds`` and
``reserved == reserves - settles - releases - refunds``,
neither is negative, and no ended request holds a reservation."""

import asyncio
import uuid
from collections.abc import Coroutine
from typing import Any, TypeVar

import asyncpg
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from libs import accounts
from libs.db import create_pool
from libs.outcomes import (
    Ended,
    Started,
    StepEnded,
    StepStarted,
    expire_due,
    record_outcomes,
)
from services.api import submission
from services.api.catalog.service import OfferCatalog
from services.api.errors import InsufficientCredits
from tests.deals_support import load_deals_catalog, record_steps, submit_deal, submit_order
from tests.support import ServerUrls

T = TypeVar("T")

TEXTS = st.sampled_from(["a", "b", "c"])
OFFERS = st.sampled_from(["echo", "sleep", "flaky"])
DEALS = st.sampled_from(
    [
        ("bundle", []),
        ("bundle", ["demo/sleep"]),
        ("bundle", ["demo/sleep", "demo/ask"]),
        ("chain", []),
        ("broken-chain", []),
    ]
)

_LEDGER = """
SELECT u.balance, u.reserved,
       coalesce(sum(l.amount) FILTER (WHERE l.kind IN ('grant', 'release', 'refund')), 0)
     - coalesce(sum(l.amount) FILTER (WHERE l.kind = 'reserve'), 0) AS ledger_balance,
       coalesce(sum(l.amount) FILTER (WHERE l.kind = 'reserve'), 0)
     - coalesce(sum(l.amount) FILTER (WHERE l.kind IN ('settle', 'release', 'refund')), 0)
         AS ledger_reserved
FROM users u LEFT JOIN credit_ledger l ON l.user_id = u.id
WHERE u.id = $1 GROUP BY u.id
"""

_HELD_BY_ENDED = """
SELECT r.id FROM requests r JOIN credit_ledger l ON l.request_id = r.id
WHERE r.user_id = $1 AND r.status NOT IN ('pending', 'running')
GROUP BY r.id
HAVING sum(CASE l.kind WHEN 'reserve' THEN l.amount ELSE -l.amount END) <> 0
"""


class LedgerMachine(RuleBasedStateMachine):
    loop: asyncio.AbstractEventLoop
    pool: "asyncpg.Pool[Any]"

    def __init__(self) -> None:
        super().__init__()
        self.user_id = uuid.uuid4()
        self.name = ""
        self.offer_requests: list[uuid.UUID] = []
        self.deal_requests: list[uuid.UUID] = []

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    @initialize(credits=st.integers(min_value=0, max_value=60))
    def open_account(self, credits: int) -> None:
        self.name = f"u-{uuid.uuid4()}"

        async def create() -> uuid.UUID:
            async with self.pool.acquire() as conn, conn.transaction():
                return (await accounts.create_user(conn, name=self.name, credits=credits)).id

        self.user_id = self.run(create())

    @rule(amount=st.integers(min_value=1, max_value=40))
    def grant(self, amount: int) -> None:
        async def grant() -> None:
            async with self.pool.acquire() as conn, conn.transaction():
                await accounts.grant_credits(conn, user=self.name, amount=amount)

        self.run(grant())

    @rule(action=OFFERS, text=TEXTS)
    def submit_offer(self, action: str, text: str) -> None:
        async def submit() -> None:
            offer = await OfferCatalog(self.pool, refresh_s=60).get("demo", action)
            assert offer is not None
            order = submission.offer_order(offer, {"text": text})
            try:
                submitted = await submit_order(self.pool, self.user_id, order)
            except InsufficientCredits:
                return
            if not submitted.duplicate:
                self.offer_requests.append(submitted.id)

        self.run(submit())

    @rule(deal=DEALS, text=TEXTS)
    def submit_a_deal(self, deal: tuple[str, list[str]], text: str) -> None:
        slug, addons = deal
        inputs = {"text": text}
        if slug == "bundle":
            inputs |= {"name": text, "age": text}
            if "demo/ask" in addons:
                inputs["prompt"] = text
        try:
            submitted = self.run(submit_deal(self.pool, self.user_id, slug, inputs, addons))
        except InsufficientCredits:
            return
        if not submitted.duplicate:
            self.deal_requests.append(submitted.id)

    @precondition(lambda self: self.offer_requests)
    @rule(data=st.data(), ok=st.booleans(), start_first=st.booleans())
    def offer_outcome(self, data: st.DataObject, ok: bool, start_first: bool) -> None:
        """An outcome, possibly a second delivery of one already recorded."""
        request_id = data.draw(st.sampled_from(self.offer_requests))
        started = [Started(request_id, 1)] if start_first else []
        ended = Ended(request_id, 1, "succeeded" if ok else "failed", ["x"] if ok else None)
        self.run(record_outcomes(self.pool, started=started, ended=[ended]))

    @precondition(lambda self: self.deal_requests)
    @rule(data=st.data(), ok=st.booleans(), attempt=st.integers(min_value=1, max_value=2))
    def step_outcome(self, data: st.DataObject, ok: bool, attempt: int) -> None:
        """An outcome of a queued step (a worker only runs what was queued)."""
        request_id = data.draw(st.sampled_from(self.deal_requests))
        queued = self.run(
            self.pool.fetch(
                "SELECT idx FROM request_steps WHERE request_id = $1 AND prompt IS NOT NULL",
                request_id,
            )
        )
        step = data.draw(st.sampled_from([r["idx"] for r in queued]))
        self.run(
            record_steps(
                self.pool,
                started=[StepStarted(request_id, step, attempt)],
                ended=[
                    StepEnded(
                        request_id,
                        step,
                        attempt,
                        "succeeded" if ok else "failed",
                        results=["out"] if ok else None,
                        error=None if ok else "boom",
                    )
                ],
            )
        )

    @precondition(lambda self: self.offer_requests or self.deal_requests)
    @rule(data=st.data())
    def expire(self, data: st.DataObject) -> None:
        """Time passes for one request (ended or not), and the expiry statement runs."""
        request_id = data.draw(st.sampled_from(self.offer_requests + self.deal_requests))

        async def expire() -> None:
            await self.pool.execute(
                "UPDATE requests SET created_at = created_at - interval '2 hours', "
                "finished_at = finished_at - interval '2 hours' WHERE id = $1",
                request_id,
            )
            async with self.pool.acquire() as conn, conn.transaction():
                await expire_due(conn, limit=50)

        self.run(expire())

    @invariant()
    def ledger_adds_up(self) -> None:
        if not self.name:
            return
        row = self.run(self.pool.fetchrow(_LEDGER, self.user_id))
        assert row is not None
        assert row["balance"] == row["ledger_balance"]
        assert row["reserved"] == row["ledger_reserved"]
        assert row["balance"] >= 0
        assert row["reserved"] >= 0
        assert self.run(self.pool.fetch(_HELD_BY_ENDED, self.user_id)) == []


def test_credit_ledger_always_adds_up(servers: ServerUrls) -> None:
    loop = asyncio.new_event_loop()
    pool = loop.run_until_complete(create_pool(servers.database_url, min_size=1, max_size=2))
    try:
        loop.run_until_complete(load_deals_catalog(pool))
        loop.run_until_complete(pool.execute("UPDATE offers SET expiration = 3600"))
        LedgerMachine.loop, LedgerMachine.pool = loop, pool
        LedgerMachine.TestCase.settings = settings(
            max_examples=25,
            stateful_step_count=25,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow],
        )
        LedgerMachine.TestCase().runTest()
    finally:
        loop.run_until_complete(pool.close())
        loop.close()
