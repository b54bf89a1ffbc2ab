"""Every delivery goes through the SSRF guard at connect time: a receiver on a loopback or
metadata address is refused (a failed attempt that says why) unless ``RELAI_SSRF_ALLOW`` lists
it; the receiver is never called."""

from typing import Any

import asyncpg
import pytest

from libs.accounts import NewUser
from tests.integration.dispatcher.helpers import (
    all_settled,
    attempts,
    create_endpoint,
    deliveries,
    dispatching,
    queue,
    settings_for,
    wait_for,
)
from tests.integration.dispatcher.receiver import Receiver
from tests.support import ServerUrls


@pytest.mark.parametrize(
    ("host", "allow", "why"),
    [
        ("127.0.0.1", [], "127.0.0.1 is a loopback address"),
        ("2130706433", [], "127.0.0.1 is a loopback address"),  # 127.0.0.1, spelt otherwise
        ("localhost", [], "localhost is a local or cloud metadata name"),
        ("169.254.169.254", ["127.0.0.1"], "169.254.169.254 is a cloud metadata address"),
    ],
)
async def test_a_receiver_beyond_the_public_internet_is_refused_at_connect_time(
    servers: ServerUrls,
    db_pool: "asyncpg.Pool[Any]",
    user: NewUser,
    receiver: Receiver,
    host: str,
    allow: list[str],
    why: str,
) -> None:
    url = receiver.url.replace("127.0.0.1", host)
    endpoint = await create_endpoint(db_pool, user.id, url)
    receiver.secrets = [endpoint.secret]
    settings = settings_for(servers, ssrf_allow=allow, webhook_retry_for_s=0.05)
    async with dispatching(settings):
        (delivery_id,) = await queue(db_pool, user.id)
        await wait_for(lambda: all_settled(db_pool, 1))

    assert receiver.received == []
    (attempt,) = await attempts(db_pool, delivery_id)
    assert attempt["status_code"] is None
    assert attempt["error"].startswith("blocked by the SSRF guard, not connected: ")
    assert why in attempt["error"]
    row = (await deliveries(db_pool))[delivery_id]
    assert (row["status"], row["last_error"]) == ("failed", attempt["error"])


async def test_an_allowed_address_is_reached(
    servers: ServerUrls, db_pool: "asyncpg.Pool[Any]", user: NewUser, receiver: Receiver
) -> None:
    url = receiver.url.replace("127.0.0.1", "2130706433")
    endpoint = await create_endpoint(db_pool, user.id, url)
    receiver.secrets = [endpoint.secret]
    async with dispatching(settings_for(servers, ssrf_allow=["127.0.0.0/8"])):
        await queue(db_pool, user.id)
        await wait_for(lambda: all_settled(db_pool, 1))

    (got,) = receiver.received
    assert got.verified
