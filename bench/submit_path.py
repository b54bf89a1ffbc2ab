"""The submit path alone: request + reservation + ledger + outbox, written three ways.

- ``orm``: a SQLAlchemy ORM session (lock the user, check and move the balance, add three
  rows, commit), the usual way to write it;
- ``statement``: the API's one-request statement (one round trip, asyncpg);
- ``group commit``: the API's batcher, concurrent submissions sharing a statement and a commit.

Each runs with ``--concurrency`` submitters for ``--seconds``, spread over ``--users`` users
(one user is the hot-row case: every submission updates the same balance).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated

import typer
import uvloop
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from bench.stack import prepared_servers
from libs import accounts
from libs.contracts import TASKS_STREAM
from libs.db import PgPool, create_pool, sqlalchemy_url
from libs.db.models import CreditEntry, OutboxEntry, Request, User
from services.api.submission import repository
from services.api.submission.batcher import SubmitBatcher
from services.api.submission.repository import NewRequest

cli = typer.Typer(add_completion=False)

Submit = Callable[[NewRequest], Awaitable[None]]


def _new(user_id: uuid.UUID, offer_id: uuid.UUID) -> NewRequest:
    return NewRequest(
        id=uuid.uuid4(),
        user_id=user_id,
        offer_id=offer_id,
        deal_id=None,
        inputs={"text": "hello"},
        prompt="hello",
        price=1,
        traceparent="00-" + "0" * 31 + "1-" + "0" * 15 + "1-01",
        payloads=('{"v": 1}',),
    )


def _orm(sessions: async_sessionmaker[AsyncSession]) -> Submit:
    async def submit(new: NewRequest) -> None:
        async with sessions() as session, session.begin():
            user = (
                await session.execute(select(User).where(User.id == new.user_id).with_for_update())
            ).scalar_one()
            if user.balance < new.price:
                raise RuntimeError("short balance")
            user.balance -= new.price
            user.reserved += new.price
            session.add(
                Request(
                    id=new.id,
                    user_id=new.user_id,
                    offer_id=new.offer_id,
                    inputs=new.inputs,
                    prompt=new.prompt,
                    price=new.price,
                    traceparent=new.traceparent,
                )
            )
            await session.flush()  # no relationship() orders the inserts: the request first
            session.add(
                CreditEntry(
                    user_id=new.user_id, request_id=new.id, kind="reserve", amount=new.price
                )
            )
            session.add(
                OutboxEntry(stream=TASKS_STREAM, request_id=new.id, payload=new.payloads[0])
            )

    return submit


def _statement(pool: PgPool) -> Submit:
    async def submit(new: NewRequest) -> None:
        await repository.insert_one(pool, new)

    return submit


async def _measure(
    submit: Submit, users: list[uuid.UUID], offer_id: uuid.UUID, concurrency: int, seconds: float
) -> float:
    done = 0
    stop = time.perf_counter() + seconds

    async def submitter(n: int) -> None:
        nonlocal done
        while time.perf_counter() < stop:
            await submit(_new(users[(done + n) % len(users)], offer_id))
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(submitter(n) for n in range(concurrency)))
    return done / (time.perf_counter() - started)


async def _run(database_url: str, *, users: int, concurrency: int, seconds: float) -> None:
    pool = await create_pool(database_url, min_size=concurrency, max_size=concurrency)
    engine = create_async_engine(sqlalchemy_url(database_url), pool_size=concurrency)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    offer_id = await pool.fetchval("SELECT id FROM offers WHERE action = 'echo'")
    async with pool.acquire() as conn, conn.transaction():
        ids = [
            (await accounts.create_user(conn, name=f"submit-{users}-{n}", credits=10**12)).id
            for n in range(users)
        ]
    batcher = SubmitBatcher(pool, max_batch=200, flushers=2, on_commit=lambda: None)
    flusher = asyncio.create_task(batcher.run())

    async def grouped(new: NewRequest) -> None:
        await batcher.submit(new)

    ways: dict[str, Submit] = {
        "orm": _orm(sessions),
        "statement": _statement(pool),
        "group commit": grouped,
    }
    print(f"{users} user(s), {concurrency} concurrent submitters, {seconds:g} s each")
    for name, submit in ways.items():
        await pool.execute("TRUNCATE outbox")
        rate = await _measure(submit, ids, offer_id, concurrency, seconds)
        print(f"  {name:<14}{rate:>8.0f} submissions/s")
    flusher.cancel()
    await engine.dispose()
    await pool.close()


@cli.command()
def main(
    users: Annotated[int, typer.Option(help="users the submissions are spread over")] = 1,
    concurrency: Annotated[int, typer.Option(help="concurrent submitters")] = 32,
    seconds: Annotated[float, typer.Option(help="length of each measurement")] = 5,
) -> None:
    with prepared_servers() as (database_url, _redis_url):
        for n in sorted({1, users}):
            uvloop.run(_run(database_url, users=n, concurrency=concurrency, seconds=seconds))


if __name__ == "__main__":
    cli()
