"""What the receivers' libraries make of our signatures: a tampered body or an old timestamp is
rejected by both; during a rotation's overlap either secret verifies, after it only the new."""

import time
import uuid
from typing import Any

import asyncpg

from libs.accounts import NewUser
from libs.contracts.webhooks import webhook_id
from libs.db import create_pool
from libs.webhooks import RetryPolicy, new_secret
from services.dispatcher.delivery.sender import Sender, webhook_client
from services.dispatcher.delivery.service import Dispatcher
from tests.integration.dispatcher.helpers import (
    all_settled,
    attempts,
    create_endpoint,
    deliveries,
    dispatching,
    queue,
    queue_one_off,
    settings_for,
    wait_for,
)
from tests.integration.dispatcher.receiver import Receiver, Verdict, verify
from tests.support import ServerUrls

REJECTED = Verdict(standard=False, openai=False)


async def test_a_tampered_body_is_rejected_by_both_libraries(
    servers: ServerUrls, db_pool: "asyncpg.Pool[Any]", user: NewUser, receiver: Receiver
) -> None:
    endpoint = await create_endpoint(db_pool, user.id, receiver.url)
    receiver.secrets = [endpoint.secret]
    async with dispatching(settings_for(servers)):
        await queue(db_pool, user.id)
        await wait_for(lambda: all_settled(db_pool, 1))

    (got,) = receiver.received
    assert verify(got.body, got.headers, endpoint.secret).both
    tampered = got.body.replace(b'"succeeded"', b'"failed"')
    assert tampered != got.body
    assert verify(tampered, got.headers, endpoint.secret) == REJECTED
    assert verify(got.body + b" ", got.headers, endpoint.secret) == REJECTED
    assert verify(got.body, got.headers, new_secret()) == REJECTED
    other_id = {**got.headers, "webhook-id": webhook_id(uuid.uuid4())}
    assert verify(got.body, other_id, endpoint.secret) == REJECTED


async def test_a_timestamp_older_than_five_minutes_is_rejected_by_both_libraries(
    servers: ServerUrls, db_pool: "asyncpg.Pool[Any]", user: NewUser, receiver: Receiver
) -> None:
    """A dispatcher whose clock is six minutes late: the receiver refuses what it signs (400,
    an attempt that failed), though the signature itself is right."""
    endpoint = await create_endpoint(db_pool, user.id, receiver.url)
    receiver.secrets = [endpoint.secret]
    (delivery_id,) = await queue(db_pool, user.id)
    pool = await create_pool(servers.database_url, min_size=1, max_size=2)
    client = webhook_client(["127.0.0.1"], max_connections=2)
    late = Sender(client, timeout_s=2, user_agent="test", clock=lambda: time.time() - 360)
    dispatcher = Dispatcher(
        pool,
        late,
        database_url=servers.database_url,
        policy=RetryPolicy(base_s=60, cap_s=60, retry_for_s=3600),
        concurrency=2,
        lease_s=5,
        poll_s=0.5,
        disable_after_s=3600,
    )
    try:
        await dispatcher.turn()
        await wait_for(lambda: len(receiver.received) == 1)
        await dispatcher.drain(5)
    finally:
        await client.aclose()
        await pool.close()

    (got,) = receiver.rejected
    assert int(got.headers["webhook-timestamp"]) < time.time() - 300
    assert verify(got.body, got.headers, endpoint.secret) == REJECTED
    (attempt,) = await attempts(db_pool, delivery_id)
    assert attempt["status_code"] == 400
    assert (await deliveries(db_pool))[delivery_id]["status"] == "pending"


async def test_during_a_rotation_both_secrets_verify_and_after_it_only_the_new(
    servers: ServerUrls, db_pool: "asyncpg.Pool[Any]", user: NewUser, receiver: Receiver
) -> None:
    old = new_secret()
    endpoint = await create_endpoint(
        db_pool, user.id, receiver.url, previous_secret=old, previous_for_s=3600
    )
    receiver.secrets = [old]  # it learns the new secret during the overlap
    async with dispatching(settings_for(servers)):
        await queue(db_pool, user.id, 3)
        await wait_for(lambda: all_settled(db_pool, 3))
        during = list(receiver.received)
        await db_pool.execute(
            "UPDATE webhook_endpoints SET previous_until = now() - interval '1 second'"
        )
        receiver.secrets = [old, endpoint.secret]
        await queue(db_pool, user.id, 3)
        await wait_for(lambda: all_settled(db_pool, 6))
        after = receiver.received[3:]

    assert len(during) == len(after) == 3
    for got in during:
        assert len(got.headers["webhook-signature"].split()) == 2
        assert verify(got.body, got.headers, old).both
        assert verify(got.body, got.headers, endpoint.secret).both
    for got in after:
        assert len(got.headers["webhook-signature"].split()) == 1
        assert verify(got.body, got.headers, endpoint.secret).both
        assert verify(got.body, got.headers, old) == REJECTED
    assert receiver.rejected == []  # no event missed across the rotation


async def test_a_one_off_delivery_whose_owner_has_no_secret_is_never_sent_unsigned(
    servers: ServerUrls, db_pool: "asyncpg.Pool[Any]", user: NewUser, receiver: Receiver
) -> None:
    delivery_id = await queue_one_off(db_pool, user.id, receiver.url)
    async with dispatching(settings_for(servers, webhook_retry_for_s=0.5)):
        await wait_for(lambda: all_settled(db_pool, 1))

    assert receiver.received == []
    row = (await deliveries(db_pool))[delivery_id]
    assert (row["status"], row["last_error"]) == (
        "failed",
        "no signing secret for this delivery's owner",
    )
