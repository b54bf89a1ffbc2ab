"""Outcomes of requests: record that they started or ended, idempotently, and settle or refund
their credits with one ledger row each. The API's results consumer and recon share this path."""

from libs.outcomes.expiry import expire_due
from libs.outcomes.record import Ended, Started, credits_moved, events_of, record_outcomes
from libs.outcomes.steps import (
    StepEnded,
    StepStarted,
    by_request,
    cancel_request_steps,
    record_request_steps,
)

__all__ = [
    "Ended",
    "Started",
    "StepEnded",
    "StepStarted",
    "by_request",
    "cancel_request_steps",
    "credits_moved",
    "events_of",
    "expire_due",
    "record_outcomes",
    "record_request_steps",
]
