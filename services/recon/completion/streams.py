"""Which requests still have a message in flight on Redis (``libs.outcomes.redrive``)."""

from libs.outcomes.redrive import in_flight as live_request_ids

__all__ = ["live_request_ids"]
