"""Completion webhooks on the wire: the events a user may subscribe to, the message id every
attempt of one delivery carries, and the notification channel that wakes the dispatchers."""

from __future__ import annotations

import uuid

REQUEST_EVENTS = (
    "request.succeeded",
    "request.failed",
    "request.cancelled",
    "request.expired",
)
"""A request reached a final state: one event each."""

STEP_EVENTS = ("step.succeeded", "step.failed")
"""A step of a deal's request ended (only endpoints that ask for them get these)."""

PING_EVENT = "webhook.ping"
"""A test event, sent on demand to one endpoint."""

WEBHOOK_EVENTS = REQUEST_EVENTS + STEP_EVENTS
"""What an endpoint may subscribe to."""

WEBHOOKS_CHANNEL = "relai_webhooks"
"""Postgres notifies it when deliveries are written, to wake the dispatchers at once."""

SECRET_PREFIX = "whsec_"


def webhook_id(delivery_id: uuid.UUID) -> str:
    """The ``webhook-id`` header (and the payload's ``id``) of a delivery: the same on every
    attempt, so that a receiver can tell a retry from a new event."""
    return f"msg_{delivery_id.hex}"
