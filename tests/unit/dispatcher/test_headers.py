"""The headers of an attempt: the delivery's one id, a fresh timestamp, a signature per secret
(the current one and, during a rotation's overlap, the previous one)."""

import uuid

from libs.contracts.webhooks import webhook_id
from libs.webhooks import new_secret, signature
from services.dispatcher.delivery.schemas import Claimed
from services.dispatcher.delivery.sender import Sender, webhook_client


async def test_each_attempt_has_a_fresh_timestamp_and_the_delivery_s_one_id() -> None:
    current, previous = new_secret(), new_secret()
    delivery = Claimed(
        id=uuid.uuid4(),
        user_id=uuid.uuid4(),
        endpoint_id=uuid.uuid4(),
        request_id=uuid.uuid4(),
        event="request.succeeded",
        url="https://example.com/hook",
        payload='{"id": "x"}',
        attempt=1,
        secrets=(current, previous),
    )
    now = [1_700_000_000.0]
    async with webhook_client([], max_connections=1) as client:
        sender = Sender(client, timeout_s=1, user_agent="Relai-Webhooks/test", clock=lambda: now[0])
        first = sender.headers(delivery)
        now[0] += 90
        second = sender.headers(delivery)

    assert first["webhook-id"] == second["webhook-id"] == webhook_id(delivery.id)
    assert (first["webhook-timestamp"], second["webhook-timestamp"]) == ("1700000000", "1700000090")
    body = delivery.payload.encode()
    assert first["webhook-signature"] == " ".join(
        signature(s, msg_id=webhook_id(delivery.id), timestamp=1_700_000_000, body=body)
        for s in (current, previous)
    )
    assert first["content-type"] == "application/json"
    assert first["user-agent"] == "Relai-Webhooks/test"
