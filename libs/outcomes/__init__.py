"""Outcomes of requests: record that they started or ended, idempotently, and settle or refund
their credits with one ledger row each. The API's results consumer and recon share this path."""

from libs.outcomes.record import Ended, Started, credits_moved, events_of, record_outcomes

__all__ = ["Ended", "Started", "credits_moved", "events_of", "record_outcomes"]
